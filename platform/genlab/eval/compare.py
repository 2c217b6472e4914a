"""The 'VAE vs GAN vs diffusion' comparison: load each family's checkpoint, sample, score, tabulate.

Every model is scored on the same footing: N samples against the 10k test set in the FLD classifier's
feature space (FLD and FLD / floor, precision and recall with k=3, class-histogram entropy), plus sampling
speed, training wall time (the sum of the run's epoch times) and parameter count (what sampling runs).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from genlab.core.checkpoint import find_latest_checkpoint, load_model, read_checkpoint_config
from genlab.core.rundir import read_metrics
from genlab.eval.sample_quality import score_sampler

COLUMNS = ["model", "sampler", "n_samples", "fld", "fld_ratio", "precision", "recall", "class_entropy_frac",
           "samples_per_s", "train_wall_min", "params_M"]


@dataclass
class Generator:
    name: str
    sampler: str
    sample: Callable[[int, int], torch.Tensor]  # (n, seed) -> images in [0, 1], (n, 1, 28, 28)
    params: int
    train_wall_s: float


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def run_dir_of(checkpoint: Path) -> Path:
    """checkpoints/step_<n> (local runtime) or checkpoint_<time> (Ray Train) -> the run directory."""
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent


def train_wall_s(run_dir: Path) -> float:
    return sum(r["perf/epoch_s"] for r in read_metrics(run_dir / "metrics.jsonl") if "perf/epoch_s" in r)


def load_generator(path: str | Path, ddim_steps: int = 50, device: str = "cpu") -> Generator:
    """A run directory or checkpoint of any generative family -> a uniform sampling interface."""
    ckpt = find_latest_checkpoint(path)
    if ckpt is None:
        raise FileNotFoundError(f"{path}: no genlab checkpoint found (pass a run directory or a checkpoint)")
    family = read_checkpoint_config(ckpt)["family"]
    wall = train_wall_s(run_dir_of(ckpt))
    if family == "autoencoders":
        vae = load_model(ckpt, device=device)
        if not hasattr(vae, "sample"):
            raise ValueError(f"{path} is a deterministic autoencoder; only a VAE can sample from a prior")
        return Generator("VAE", "prior -> decoder mean", lambda n, s: _batched(
            lambda b, g: vae.sample(b, generator=g).cpu(), n, s), _count(vae.decoder), wall)
    if family == "gan":
        gan = load_model(ckpt, ema=(ckpt / "ema.safetensors").exists(), device=device)
        labels = (lambda n: torch.arange(n) % gan.cfg.num_classes) if gan.cfg.num_classes else (lambda n: None)
        return Generator("DCGAN" + (" (EMA G)" if (ckpt / "ema.safetensors").exists() else ""), "one G pass",
                         lambda n, s: gan.generate(n, labels=labels(n), seed=s), _count(gan.generator), wall)
    if family == "diffusion":
        from genlab.diffusion import SamplerConfig, sample
        from genlab.diffusion.evaluate import load_for_sampling

        unet, schedule, _ = load_for_sampling(ckpt, device)
        sampler = SamplerConfig("ddim", steps=ddim_steps)
        return Generator("DDPM (EMA)", f"ddim-{ddim_steps}, unconditional",
                         lambda n, s: sample(unet, schedule, n, sampler, seed=s, device=device)[0],
                         _count(unet), wall)
    raise ValueError(f"{path}: family {family!r} is not a generative model")


def _batched(fn, n: int, seed: int, batch: int = 1000) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.cat([fn(min(batch, n - s), gen) for s in range(0, n, batch)])


def compare(paths: dict[str, str | Path], n: int = 10_000, seed: int = 0, quick: bool = False,
            ddim_steps: int = 50) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """Rows of COLUMNS (one per model) and 20 samples of each model for the figure."""
    rows, grids = [], {}
    for label, path in paths.items():
        gen = load_generator(path, ddim_steps)
        q = score_sampler(lambda: gen.sample(n, seed), quick=quick)
        images = q["images"]
        rows.append({"model": gen.name, "sampler": gen.sampler, "n_samples": n, "fld": q["fld"],
                     "fld_ratio": q["fld_ratio"], "precision": q["precision"], "recall": q["recall"],
                     "class_entropy_frac": q["class_entropy_frac"], "samples_per_s": q["samples_per_s"],
                     "train_wall_min": gen.train_wall_s / 60, "params_M": gen.params / 1e6, "path": str(path),
                     "fld_floor": q["fld_floor"], "class_histogram": q["class_histogram"]})
        grids[gen.name] = images[:20]
    return rows, grids


def write_csv(rows: list[dict], path: Path) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS + ["fld_floor", "path"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def comparison_figure(rows: list[dict], grids: dict[str, torch.Tensor], path: Path) -> Path:
    """Bars of the main metrics side by side, and each model's samples under them."""
    import matplotlib
    from torchvision.utils import make_grid

    from genlab.core.plotting import _save, figure

    names = [r["model"] for r in rows]
    panels = [("fld_ratio", "FLD / floor (lower is better)", False),
              ("precision", "precision (k=3)", False), ("recall", "recall (k=3)", False),
              ("class_entropy_frac", "class entropy / ln 10", False),
              ("samples_per_s", "samples per second (log)", True)]
    fig = figure(figsize=(3.2 * len(panels), 3.2 + 0.9 * len(rows)))
    grid = fig.add_gridspec(1 + len(rows), len(panels), height_ratios=[3.0] + [1.0] * len(rows))
    colors = matplotlib.colormaps["tab10"].colors
    for i, (key, title, log) in enumerate(panels):
        ax = fig.add_subplot(grid[0, i])
        ax.bar(range(len(rows)), [r[key] for r in rows], color=colors[:len(rows)])
        ax.set_xticks(range(len(rows)), names, rotation=20, fontsize=8)
        ax.set_title(title, fontsize=9)
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3, axis="y")
    for j, name in enumerate(names):
        ax = fig.add_subplot(grid[1 + j, :])
        ax.imshow(make_grid(grids[name].clamp(0, 1), nrow=20, padding=2, pad_value=1.0)[0].numpy(), cmap="gray")
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    return _save(fig, path)

