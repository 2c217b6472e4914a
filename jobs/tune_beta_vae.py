"""Chapter 5.6: tune a beta-VAE with Ray Tune: Optuna (TPE) proposes beta, latent size and lr; ASHA stops weak
trials early; the objective is the negative ELBO (`--objective nll`) or a disentanglement proxy (`mig`: the
mutual information gap of the latents w.r.t. the digit class), both on a 10k validation split carved from MNIST's
training set. Writes the trade-off figure across trials, then trains the best config to a final checkpoint on the
full training set; only that run touches the test set (`final.json`). Resumable (--sweep.resume).

    python jobs/tune_beta_vae.py                       # 12 trials, objective nll
    python jobs/tune_beta_vae.py --objective mig
    ray job submit --working-dir . -- python jobs/tune_beta_vae.py --smoke-test
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from genlab.autoencoders import ModelConfig, TrainConfig
from genlab.autoencoders.config import smoke_config
from genlab.core.cli import cli
from genlab.distributed.trainer import RayConfig
from genlab.distributed.tune_sweeps import SweepConfig, sweep_job

OBJECTIVES = {"nll": ("val/neg_elbo_nats", "min"), "mig": ("val/mig", "max")}


def vae_base() -> TrainConfig:
    return TrainConfig(model=ModelConfig(kind="vae", arch="mlp", latent_dim=16), epochs=4, eval_images=5000)


@dataclass
class Args:
    train: TrainConfig = field(default_factory=vae_base)
    """The config every trial starts from (the sweep overrides beta, model.latent_dim, lr)."""
    objective: Literal["nll", "mig"] = "nll"
    """nll: minimise the validation negative ELBO (nats); mig: maximise the class mutual information gap."""
    sweep: SweepConfig = field(default_factory=lambda: SweepConfig(name=""))
    ray: RayConfig = field(default_factory=RayConfig)
    smoke_test: bool = False
    """Two tiny trials and a tiny final run."""


def main(args: Args) -> None:
    if args.train.model.kind != "vae":
        raise SystemExit("jobs/tune_beta_vae.py sweeps VAEs; use --train.model.kind vae (the default)")
    train = smoke_config(args.train) if args.smoke_test else args.train
    metric, mode = OBJECTIVES[args.objective]
    sweep = args.sweep if args.sweep.name else replace(args.sweep, name=f"tune-beta-vae-{args.objective}")
    sweep_job("vae", train, sweep, metric, mode, args.ray, args.smoke_test)


if __name__ == "__main__":
    main(cli(Args))
