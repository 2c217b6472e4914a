"""Chapter 5.6: meta-train Prototypical Networks or MAML (Conv-4) on episodes under Ray Train (each worker draws
its own task batch, gradients averaged), then test on held-out scripts/alphabets: accuracy +- 95% CI.

    python jobs/meta.py                                               # ProtoNet, 5-way 1-shot, glyph scripts
    python jobs/meta.py --train.n-way 20 --train.k-shot 5             # ProtoNet trained 20-way 5-shot
    python jobs/meta.py --train.algo maml --train.tasks-per-batch 16  # MAML, second order
    python jobs/meta.py --train.algo maml --train.first-order
    python jobs/meta.py --train.data.benchmark omniglot_cross          # glyphs + Omniglot small1 -> small2 alphabets
    ray job submit --working-dir . -- python jobs/meta.py --smoke-test
"""

from __future__ import annotations

from dataclasses import dataclass, field

from genlab.core.cli import cli
from genlab.distributed.jobs import train_job
from genlab.distributed.trainer import RayConfig
from genlab.meta import MetaConfig
from genlab.meta.config import smoke_config


@dataclass
class Args:
    train: MetaConfig = field(default_factory=MetaConfig)
    """What to meta-train."""
    ray: RayConfig = field(default_factory=RayConfig)
    """Where and how it runs."""
    smoke_test: bool = False
    """Tiny run (a few meta-updates on 20 scripts, tiny Conv-4) that checks everything end to end."""


def main(args: Args) -> None:
    train_job(args.train, "genlab.meta.train:train", args.ray, args.smoke_test, smoke_config)


if __name__ == "__main__":
    main(cli(Args))
