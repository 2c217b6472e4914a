"""Train the seed's DCGAN (chapter 5.3), optionally class-conditional, with optional stabilisers; per-step
diagnostics, a fixed-noise grid per epoch, and at the end FLD / precision / recall / class entropy of 10k samples.

    python jobs/gan.py                                       # the seed's DCGAN, 10 epochs
    python jobs/gan.py --train.model.num-classes 10 --train.ema-decay 0.999 --train.label-smoothing 0.1
    python jobs/gan.py --train.model.spectral-norm
    ray job submit --working-dir . -- python jobs/gan.py --smoke-test
"""

from __future__ import annotations

from dataclasses import dataclass, field

from genlab.core.cli import cli
from genlab.distributed.jobs import train_job
from genlab.distributed.trainer import RayConfig
from genlab.gan import GANTrainConfig
from genlab.gan.config import smoke_config


@dataclass
class Args:
    train: GANTrainConfig = field(default_factory=GANTrainConfig)
    """What to train."""
    ray: RayConfig = field(default_factory=RayConfig)
    """Where and how it runs."""
    smoke_test: bool = False
    """Tiny run (a few batches, one epoch, 200 samples scored, CPU) that checks everything end to end."""


def main(args: Args) -> None:
    train_job(args.train, "genlab.gan.train:train", args.ray, args.smoke_test, smoke_config)


if __name__ == "__main__":
    main(cli(Args))
