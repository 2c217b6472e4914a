"""Figures people would rather look at than read: image grids, row strips, 2-D latent maps, curves.

Every function writes a PNG and returns its path. Figures are `matplotlib.figure.Figure` objects made without
pyplot: no backend is chosen or changed here (no screen needed), so a notebook's `plt.show()` and inline figures
keep working after genlab is imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.colors
import torch
from matplotlib.figure import Figure
from torchvision.utils import make_grid


def figure(figsize: tuple[float, float] | None = None) -> Figure:
    """A figure outside pyplot's state (nothing to close, no backend involved); savefig renders it with Agg."""
    return Figure(figsize=figsize)


def subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float] | None = None, **kw):
    """`plt.subplots` without pyplot: (figure, axes)."""
    fig = figure(figsize)
    return fig, fig.subplots(nrows, ncols, **kw)


def _to_numpy_grid(images: torch.Tensor, nrow: int) -> "np.ndarray":  # noqa: F821
    """(H, W) for grey images, (H, W, 3) for colour ones."""
    images = images.detach().float().cpu()
    if images.dim() == 3:
        images = images.unsqueeze(1)
    grid = make_grid(images.clamp(0, 1), nrow=nrow, padding=2, pad_value=1.0)
    return grid.permute(1, 2, 0).numpy() if images.shape[1] == 3 else grid[0].numpy()


def save_image_grid(images: torch.Tensor, path: str | Path, nrow: int = 10, title: str | None = None) -> Path:
    """images: (N, 1, H, W), (N, H, W) or colour (N, 3, H, W) in [0, 1]."""
    grid = _to_numpy_grid(images, nrow)
    scale = 40 * max(1, images.shape[-1] / 28)  # a 64 px image takes as much room as a 28 px one
    fig, ax = subplots(figsize=(grid.shape[1] / scale, grid.shape[0] / scale + (0.4 if title else 0)))
    ax.imshow(grid, cmap="gray", vmin=0, vmax=1)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def save_rows(rows: Sequence[torch.Tensor], labels: Sequence[str], path: str | Path, title: str | None = None) -> Path:
    """Aligned strips, one per row (e.g. originals / reconstructions, or noisy / denoised / clean)."""
    fig, axes = subplots(len(rows), 1, figsize=(len(rows[0]) * 0.8, len(rows) * 0.95 + 0.3), squeeze=False)
    for ax, row, label in zip(axes[:, 0], rows, labels):
        ax.imshow(_to_numpy_grid(row, nrow=len(row)), cmap="gray", vmin=0, vmax=1)
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def scatter_2d(points: torch.Tensor, labels: torch.Tensor, path: str | Path, title: str = "",
               xlabel: str = "dim 1", ylabel: str = "dim 2") -> Path:
    """2-D points coloured by integer class."""
    fig, ax = subplots(figsize=(6, 5))
    sc = ax.scatter(points[:, 0].cpu(), points[:, 1].cpu(), c=labels.cpu(), cmap="tab10", s=3, alpha=0.7)
    fig.colorbar(sc, ax=ax, ticks=range(10), label="class")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return _save(fig, path)


def plot_curves(records: list[dict], keys: Sequence[str], path: str | Path, x: str = "step",
                title: str = "") -> Path:
    """One panel per metric key, against `x`, from metrics.jsonl records."""
    keys = [k for k in keys if any(k in r for r in records)]
    fig, axes = subplots(1, max(1, len(keys)), figsize=(4 * max(1, len(keys)), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        pts = [(r[x], r[key]) for r in records if key in r and x in r]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="." if len(pts) < 50 else None)
        ax.set(title=key, xlabel=x)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def _save(fig, path: str | Path, tight: bool = True) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def pca_2d(z: torch.Tensor) -> torch.Tensor:
    """Project codes (N, d) to their first two principal components (identity for d <= 2)."""
    if z.shape[1] <= 2:
        return torch.nn.functional.pad(z, (0, 2 - z.shape[1]))
    centred = z - z.mean(0)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    return centred @ v[:2].T


def sweep_tradeoff(rows: list[dict], x: str, y: str, color: str, path: str | Path, title: str = "") -> Path:
    """One point per trial: `y` against `x`, coloured by a hyperparameter (log scale), the best circled."""
    pts = [r for r in rows if r.get(x) is not None and r.get(y) is not None]
    fig, ax = subplots(figsize=(6, 4.2))
    if pts:
        sc = ax.scatter([r[x] for r in pts], [r[y] for r in pts], c=[float(r[color]) for r in pts], cmap="viridis",
                        norm=matplotlib.colors.LogNorm() if min(float(r[color]) for r in pts) > 0 else None, s=40)
        fig.colorbar(sc, ax=ax, label=color)
        ax.scatter([rows[0][x]], [rows[0][y]], s=160, facecolors="none", edgecolors="red", label="best trial")
        ax.legend(fontsize=8)
    ax.set(xlabel=x, ylabel=y, title=title)
    ax.grid(alpha=0.3)
    return _save(fig, path)
