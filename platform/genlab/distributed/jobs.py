"""What every training job does around its loop: env, run directory, Ray Train or in-process, summary."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

from genlab.core.config import load_json, to_dict
from genlab.core.rundir import make_run_dir
from genlab.distributed.env import configure_ray_env
from genlab.distributed.trainer import RayConfig, fit


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def run_training_job(job: str, loop: str, config, ray_cfg: RayConfig, dataset: str) -> tuple[Path, dict]:
    """Train `config` with `loop` in a fresh (or resumed) run directory; returns (run_dir, final metrics)."""
    configure_ray_env()
    if getattr(config, "inception_fid", False) and getattr(config, "fld_samples", 0):
        from genlab.eval.fid import InceptionWeightsUnavailable, inception_weights

        try:  # before any training: a missing download fails now, with the command that gets it
            inception_weights()
        except InceptionWeightsUnavailable as e:
            raise SystemExit(str(e)) from None
    if ray_cfg.resume:
        run_dir = Path(ray_cfg.resume).resolve()
        if not run_dir.is_dir():
            raise FileNotFoundError(f"--ray.resume {ray_cfg.resume}: no such run directory")
        saved = load_json(run_dir / "config.json")
        if saved != json.loads(json.dumps(to_dict(config))):
            raise ValueError(f"--ray.resume {run_dir}: its config.json differs from this command's config; "
                             "resume with the same flags as the original run")
    else:
        run_dir = make_run_dir(job, config.seed, root=ray_cfg.storage, config=config)
    metrics = fit(loop, config, run_dir, ray_cfg, dataset)
    return run_dir, metrics


def summary(run_dir: Path, metrics: dict) -> str:
    """A short human summary of the evaluation metrics and where the results went."""
    lines = [f"run directory: {run_dir}"]
    lines += [f"  {k} = {v:.5g}" if isinstance(v, float) else f"  {k} = {v}"
              for k, v in sorted(metrics.items()) if k.startswith(("eval/", "test/", "val/"))]
    figures = sorted(p.name for p in Path(run_dir).glob("*.png"))
    if figures:
        lines.append(f"  figures: {', '.join(figures)}")
    return "\n".join(lines)


def train_job(cfg, loop: str, ray_cfg: RayConfig, smoke_test: bool, smoke_config) -> tuple[Path, dict]:
    """Body of every training job: apply --smoke-test (smoke_config(cfg), CPU), train, print the summary."""
    cfg = smoke_config(cfg) if smoke_test else cfg
    ray_cfg = dataclasses.replace(ray_cfg, use_gpu=False) if smoke_test else ray_cfg
    setup_logging()
    run_dir, metrics = run_training_job(cfg.run_name(), loop, cfg, ray_cfg, cfg.dataset)
    print(summary(run_dir, metrics))
    return run_dir, metrics


def autoencoder_job(kind: str, train, ray_cfg: RayConfig, smoke_test: bool) -> None:
    """Body of jobs/ae.py and jobs/vae.py: check the kind, then train_job."""
    from genlab.autoencoders.config import smoke_config

    if train.model.kind != kind:
        other = "jobs/vae.py" if kind == "ae" else "jobs/ae.py"
        raise SystemExit(f"this job trains --train.model.kind {kind}; use {other} for "
                         f"{'VAEs' if kind == 'ae' else 'autoencoders'}")
    train_job(train, "genlab.autoencoders.train:train", ray_cfg, smoke_test, smoke_config)
