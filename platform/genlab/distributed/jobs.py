"""What every training job does around its loop: env, run directory, Ray Train or in-process, summary."""

from __future__ import annotations

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
              for k, v in sorted(metrics.items()) if k.startswith("eval/")]
    figures = sorted(p.name for p in Path(run_dir).glob("*.png"))
    if figures:
        lines.append(f"  figures: {', '.join(figures)}")
    return "\n".join(lines)
