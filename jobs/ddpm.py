"""Train a DDPM (chapter 5.4): U-Net eps-model, linear or cosine schedule, EMA, optional classifier-free
guidance; at the end, FLD of DDIM samples and the forward/reverse process figures.

    python jobs/ddpm.py                                      # class-conditional (label dropout 0.2), 15 epochs
    python jobs/ddpm.py --train.unet.num-classes 0           # unconditional, as in the seed
    python jobs/ddpm.py --train.schedule.kind cosine --train.sampler.guidance 3
    ray job submit --working-dir . -- python jobs/ddpm.py --smoke-test
"""

from __future__ import annotations

from dataclasses import dataclass, field

from genlab.core.cli import cli
from genlab.diffusion import DiffusionConfig, UNetConfig
from genlab.diffusion.config import smoke_config
from genlab.distributed.jobs import train_job
from genlab.distributed.trainer import RayConfig


@dataclass
class Args:
    train: DiffusionConfig = field(default_factory=lambda: DiffusionConfig(
        unet=UNetConfig(channels=16, channel_mults=(1, 2, 4), num_classes=10)))
    """What to train."""
    ray: RayConfig = field(default_factory=RayConfig)
    """Where and how it runs."""
    smoke_test: bool = False
    """Tiny run (a few batches, one epoch, a 5-step sampler, CPU) that checks everything end to end."""


def main(args: Args) -> None:
    train_job(args.train, "genlab.diffusion.train:train", args.ray, args.smoke_test, smoke_config)


if __name__ == "__main__":
    main(cli(Args))
