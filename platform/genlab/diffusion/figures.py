"""The diffusion chapter's figures: forward noising strip, reverse process strip, sample grids, curves."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from genlab.core.plotting import plot_curves, save_image_grid, save_rows
from genlab.core.rundir import read_metrics
from genlab.diffusion.samplers import SamplerConfig, sample
from genlab.diffusion.schedule import NoiseSchedule
from genlab.eval.reconstruction import to_signed

STRIP_TIMESTEPS = (0, 50, 100, 200, 300, 500, 700, 999)


def forward_strip(schedule: NoiseSchedule, images: torch.Tensor, path: Path, seed: int = 0) -> Path:
    """Rows of q(x_t | x_0) for a few test images at increasing t."""
    x0 = to_signed(images)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    ts = [t for t in STRIP_TIMESTEPS if t < schedule.T]
    cols = [schedule.q_sample(x0, torch.full((len(x0),), t), noise) for t in ts]
    rows = [torch.stack([c[i] for c in cols]).add(1).div(2) for i in range(len(x0))]
    return save_rows(rows, [f"#{i}" for i in range(len(x0))], path,
                     f"forward process q(x_t | x_0) at t = {', '.join(map(str, ts))} ({schedule.cfg.kind})")


def reverse_strip(model, schedule: NoiseSchedule, sampler: SamplerConfig, path: Path, device, seed: int = 0,
                  labels: torch.Tensor | None = None) -> Path:
    """The denoising chains of a few samples, from pure noise (left) to the image (right)."""
    n_steps = schedule.T if sampler.kind == "ddpm" else sampler.steps
    _, traj = sample(model, schedule, 6, dataclasses.replace(sampler, batch_size=6), labels=labels, seed=seed,
                     device=device, keep_every=max(1, n_steps // 8))
    rows = [torch.stack([snap[i] for snap in traj]).add(1).div(2).clamp(0, 1) for i in range(6)]
    return save_rows(rows, [f"chain {i}" for i in range(6)], path,
                     f"reverse process, {sampler.kind}-{n_steps}: x_T (left) -> x_0 (right)")


def grid_labels(model, per_class: int = 8) -> torch.Tensor | None:
    """For a conditional model: rows of one class each (0..9); None for an unconditional one."""
    if not model.cfg.num_classes:
        return None
    return torch.arange(model.cfg.num_classes).repeat_interleave(per_class)


def epoch_grid(model, schedule: NoiseSchedule, cfg, run_dir: Path, epoch: int, device) -> Path:
    """A cheap fixed-seed preview each epoch (same noise every epoch, so progress is visible)."""
    labels = grid_labels(model)
    sampler = dataclasses.replace(cfg.sampler, kind="ddim", steps=cfg.grid_steps, eta=0.0)
    n = len(labels) if labels is not None else 80
    images, _ = sample(model, schedule, n, sampler, labels=labels, seed=cfg.seed, device=device)
    return save_image_grid(images, Path(run_dir) / "epochs" / f"samples_epoch{epoch:03d}.png", nrow=8,
                           title=f"epoch {epoch}, ddim-{cfg.grid_steps}")


@torch.no_grad()
def write_figures(cfg, model, schedule: NoiseSchedule, test, run_dir: str | Path, device) -> list[Path]:
    run_dir = Path(run_dir)
    paths = [forward_strip(schedule, test[0][:6], run_dir / "forward_process.png")]
    paths.append(reverse_strip(model, schedule, cfg.sampler, run_dir / "reverse_process.png", device, cfg.seed))
    images, _ = sample(model, schedule, 100, cfg.sampler, seed=cfg.seed, device=device)
    steps = schedule.T if cfg.sampler.kind == "ddpm" else cfg.sampler.steps
    paths.append(save_image_grid(images, run_dir / "samples.png", nrow=10,
                                 title=f"unconditional samples, {cfg.sampler.kind}-{steps} (EMA weights)"))
    labels = grid_labels(model, per_class=10)
    if labels is not None:
        guided, _ = sample(model, schedule, len(labels), cfg.sampler, labels=labels, seed=cfg.seed, device=device)
        paths.append(save_image_grid(guided, run_dir / "samples_by_class.png", nrow=10,
                                     title=f"class-conditional (row = class), guidance {cfg.sampler.guidance:g}"))
    records = read_metrics(run_dir / "metrics.jsonl")
    paths.append(plot_curves(records, ["train/loss", "eval/loss_ema", "train/grad_norm", "train/lr"],
                             run_dir / "curves.png", x="step", title=cfg.run_name()))
    return paths
