"""Train an autoencoder (chapter 5.1): classic | denoising | sparse, mlp | conv.

    python jobs/ae.py --train.objective denoising --train.model.arch conv
    ray job submit --working-dir . -- python jobs/ae.py --smoke-test
"""

from __future__ import annotations

from dataclasses import dataclass, field

from genlab.autoencoders import ModelConfig, TrainConfig
from genlab.core.cli import cli
from genlab.distributed.jobs import autoencoder_job
from genlab.distributed.trainer import RayConfig


@dataclass
class Args:
    train: TrainConfig = field(default_factory=lambda: TrainConfig(model=ModelConfig(kind="ae"), epochs=10))
    """What to train."""
    ray: RayConfig = field(default_factory=RayConfig)
    """Where and how it runs."""
    smoke_test: bool = False
    """Tiny run (a few batches, one epoch, CPU) that checks everything end to end."""


def main(args: Args) -> None:
    autoencoder_job("ae", args.train, args.ray, args.smoke_test)


if __name__ == "__main__":
    main(cli(Args))
