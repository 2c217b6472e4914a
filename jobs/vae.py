"""Train a VAE or beta-VAE (chapter 5.2), mlp | conv, on dynamically binarised images.

    python jobs/vae.py --train.model.arch conv --train.beta 1.0 --train.iw-k 1000
    ray job submit --working-dir . -- python jobs/vae.py --smoke-test
"""

from __future__ import annotations

from dataclasses import dataclass, field

from genlab.autoencoders import ModelConfig, TrainConfig
from genlab.core.cli import cli
from genlab.distributed.jobs import autoencoder_job
from genlab.distributed.trainer import RayConfig


@dataclass
class Args:
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        model=ModelConfig(kind="vae", arch="conv", latent_dim=32), epochs=10, iw_k=1000, iw_images=1000))
    """What to train."""
    ray: RayConfig = field(default_factory=RayConfig)
    """Where and how it runs."""
    smoke_test: bool = False
    """Tiny run (a few batches, one epoch, CPU) that checks everything end to end."""


def main(args: Args) -> None:
    autoencoder_job("vae", args.train, args.ray, args.smoke_test)


if __name__ == "__main__":
    main(cli(Args))
