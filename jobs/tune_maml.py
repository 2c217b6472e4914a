"""Chapter 5.6: tune MAML with Ray Tune: Optuna (TPE) proposes inner lr, inner steps, meta lr and the
first-order flag; ASHA stops weak trials early on validation accuracy; then the best config is meta-trained to a
final checkpoint. Resumable (--sweep.resume); results in TensorBoard files and the Ray dashboard.

    python jobs/tune_maml.py                              # 12 trials of up to 400 meta-updates each
    python jobs/tune_maml.py --sweep.resume               # continue an interrupted sweep
    tensorboard --logdir runs/tune-maml
    ray job submit --working-dir . -- python jobs/tune_maml.py --smoke-test
"""

from __future__ import annotations

from dataclasses import dataclass, field

from genlab.core.cli import cli
from genlab.distributed.trainer import RayConfig
from genlab.distributed.tune_sweeps import SweepConfig, sweep_job
from genlab.meta import MetaConfig
from genlab.meta.config import smoke_config


def maml_base() -> MetaConfig:
    return MetaConfig(algo="maml", n_query=5, episodes=400, eval_every=100, tasks_per_batch=4, val_episodes=100,
                      test_tasks=("5w1s",))


@dataclass
class Args:
    train: MetaConfig = field(default_factory=maml_base)
    """The config every trial starts from (the sweep overrides inner_lr, inner_steps, lr, first_order)."""
    sweep: SweepConfig = field(default_factory=SweepConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    """How the best config's final run goes (Ray Train)."""
    metric: str = "val/acc"
    smoke_test: bool = False
    """Two tiny trials and a tiny final run."""


def main(args: Args) -> None:
    if args.train.algo != "maml":
        raise SystemExit("jobs/tune_maml.py sweeps MAML; use --train.algo maml (the default)")
    train = smoke_config(args.train) if args.smoke_test else args.train
    sweep_job("maml", train, args.sweep, args.metric, "max", args.ray, args.smoke_test)


if __name__ == "__main__":
    main(cli(Args))
