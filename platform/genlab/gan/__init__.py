"""Chapter 5.3: the seed's DCGAN (and a class-conditional variant) with stabilisers. Pure torch, no ray."""

from genlab.core.checkpoint import register_family
from genlab.core.config import from_dict
from genlab.gan.config import GANTrainConfig
from genlab.gan.models import GAN, Discriminator, GANConfig, Generator


def _build_from_checkpoint(config: dict) -> GAN:
    return GAN(from_dict(GANTrainConfig, config).model)


register_family("gan", _build_from_checkpoint)

__all__ = ["GAN", "GANConfig", "GANTrainConfig", "Discriminator", "Generator"]
