"""Train an autoencoder (chapter 5.1): classic | denoising | sparse, mlp | conv.

    python jobs/ae.py --train.objective denoising --train.model.arch conv
    ray job submit --working-dir . -- python jobs/ae.py --smoke-test
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import tyro

from genlab.autoencoders import ModelConfig, TrainConfig
from genlab.autoencoders.config import smoke_config
from genlab.distributed.jobs import run_training_job, setup_logging, summary
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
    if args.train.model.kind != "ae":
        raise SystemExit("jobs/ae.py trains autoencoders (--train.model.kind ae); use jobs/vae.py for VAEs")
    cfg = smoke_config(args.train) if args.smoke_test else args.train
    ray_cfg = dataclasses.replace(args.ray, use_gpu=False) if args.smoke_test else args.ray
    setup_logging()
    run_dir, metrics = run_training_job(cfg.run_name(), "genlab.autoencoders.train:train",
                                        cfg, ray_cfg, cfg.dataset)
    print(summary(run_dir, metrics))


if __name__ == "__main__":
    main(tyro.cli(Args))
