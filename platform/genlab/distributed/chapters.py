"""The main job: chapters 5.1-5.2 trained briefly on the embedded Ray, evaluated, and written up."""

from __future__ import annotations

import dataclasses
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch

from genlab.autoencoders import ModelConfig, TrainConfig
from genlab.autoencoders.config import smoke_config
from genlab.core.checkpoint import find_latest_checkpoint, load_model
from genlab.core.rundir import make_run_dir
from genlab.distributed.env import quiet_console
from genlab.distributed.jobs import run_training_job
from genlab.distributed.trainer import RayConfig, share_of_cpus
from genlab.eval.fld_reference import fld_of_samples, reference_classifier
from genlab.eval.report import write_report

log = logging.getLogger(__name__)
LOOP = "genlab.autoencoders.train:train"


@dataclass
class Chapter1Config:
    epochs: int = 2
    """Epochs per model (the quality bars in benchmarks/RESULTS.md need 20-80)."""
    seed: int = 0
    """Seed of every run."""
    dataset: str = "mnist"
    """'mnist' or 'fashion_mnist' (FLD needs mnist)."""
    ray: RayConfig = field(default_factory=RayConfig)
    """Where and how the trainings run."""
    smoke_test: bool = False
    """A few batches per model: checks the whole chain in a few minutes."""
    smoke_steps: int = 5
    """Training steps per model in a smoke test (more: the models' trainings overlap long enough to see it)."""
    parallel: int = 2
    """Models trained at the same time, each on its share of the cluster's CPUs (GPUs: `--ray.num-workers` each);
    1 trains them one after the other."""


def chapter1_models(cfg: Chapter1Config) -> dict[str, TrainConfig]:
    common = dict(epochs=cfg.epochs, seed=cfg.seed, dataset=cfg.dataset, progress=True)
    models = {
        "AE mlp (classic)": TrainConfig(model=ModelConfig(kind="ae", arch="mlp"), **common),
        "AE conv (denoising)": TrainConfig(model=ModelConfig(kind="ae", arch="conv"), objective="denoising",
                                           **common),
        "AE mlp (sparse)": TrainConfig(model=ModelConfig(kind="ae", arch="mlp"), objective="sparse", **common),
        "VAE conv (beta=1)": TrainConfig(model=ModelConfig(kind="vae", arch="conv"), iw_k=100, iw_images=1000,
                                         **common),
    }
    # one progress bar per model, smoke test or not
    if not cfg.smoke_test:
        return models
    return {k: dataclasses.replace(smoke_config(v), progress=True, max_steps_per_epoch=cfg.smoke_steps)
            for k, v in models.items()}


def run_chapter1(cfg: Chapter1Config) -> Path:
    """Train the chapter's models, then write report.md (metrics table + figures); returns its path."""
    out = make_run_dir("chapter1", cfg.seed, root=cfg.ray.storage, config=cfg)
    models = chapter1_models(cfg)
    parallel = max(1, cfg.parallel) if cfg.ray.num_workers else 1  # in-process runs share torch's global RNG
    ray_cfg = share_of_cpus(cfg.ray, parallel)

    def train_one(name: str) -> dict:
        train_cfg, t0 = models[name], time.time()
        run_dir, metrics = run_training_job(train_cfg.run_name(), LOOP, train_cfg, ray_cfg, cfg.dataset)
        row = {"model": name, "train_s": time.time() - t0, "run": run_dir.name,
               **{k.removeprefix("eval/"): v for k, v in metrics.items() if k.startswith("eval/")}}
        if train_cfg.model.kind == "vae" and cfg.dataset == "mnist":
            row |= _vae_fld(run_dir, n=500 if cfg.smoke_test else 5000, seed=cfg.seed, quick=cfg.smoke_test)
        return row | {"figures": sorted(Path(run_dir).glob("*.png"))}

    with quiet_console.pinned_to(out), ThreadPoolExecutor(parallel) as pool:
        rows = list(pool.map(train_one, models))
    figures = {row["model"]: row.pop("figures") for row in rows}
    _, info = reference_classifier(cfg.dataset, quick=cfg.smoke_test) if cfg.dataset == "mnist" else (None, {})
    intro = (f"Each model trained {1 if cfg.smoke_test else cfg.epochs} epoch(s) on {cfg.dataset} "
             f"({'smoke test: a few batches' if cfg.smoke_test else 'full passes'}), "
             f"{cfg.ray.num_workers} Ray Train worker(s) each, {parallel} model(s) at a time (train_s is the wall "
             f"time of each), data backend '{cfg.ray.data_backend}'. "
             f"MSE/PSNR on the test set; VAE NLL on binarised test images (nats). FLD classifier test accuracy "
             f"{info.get('test_accuracy', float('nan')):.4f}, FLD floor (train vs test) "
             f"{info.get('fld_floor_train_vs_test', float('nan')):.3g}.")
    columns = ["model", "mse", "psnr_db", "psnr_gain_db", "code_l1", "neg_elbo_nats", "iw_nll_nats", "iw_k",
               "fld", "fld_ratio", "train_s", "run"]
    return write_report(out / "report.md", "Chapters 5.1-5.2: autoencoders and VAE", intro, rows, columns, figures)


def _vae_fld(run_dir: Path, n: int, seed: int, quick: bool) -> dict:
    vae = load_model(find_latest_checkpoint(run_dir))
    samples = vae.sample(n, generator=torch.Generator().manual_seed(seed))
    res = fld_of_samples(samples, quick=quick)
    return {"fld": res["fld"], "fld_ratio": res["fld_ratio"]}
