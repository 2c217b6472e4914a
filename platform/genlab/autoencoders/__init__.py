"""Chapters 5.1 (autoencoders: classic, denoising, sparse) and 5.2 (VAE, beta-VAE). Pure torch, no ray."""

from genlab.autoencoders.config import TrainConfig
from genlab.autoencoders.models import VAE, Autoencoder, ModelConfig, build_model, interpolate
from genlab.core.checkpoint import register_family
from genlab.core.config import from_dict


def _build_from_checkpoint(config: dict):
    return build_model(from_dict(TrainConfig, config).model)


register_family("autoencoders", _build_from_checkpoint)

__all__ = ["Autoencoder", "VAE", "ModelConfig", "TrainConfig", "build_model", "interpolate"]
