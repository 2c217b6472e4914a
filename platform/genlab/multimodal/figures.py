"""Chapter 5.7's figures: the image-caption similarity matrix and top-k text->image results per query."""

from __future__ import annotations

import textwrap
from pathlib import Path

import torch

from genlab.core.plotting import _save, figure, subplots


def _rgb(image: torch.Tensor):
    """uint8 (3, H, W) or (H, W) -> what imshow takes."""
    return image.permute(1, 2, 0).numpy() if image.dim() == 3 else image.numpy()


def similarity_matrix(image_features: torch.Tensor, text_features: torch.Tensor, images: torch.Tensor,
                      captions: list[str], path: str | Path) -> Path:
    """Cosine similarities of n images (columns, shown on top) with their n captions (rows), as in the CLIP
    paper's figure: a good model is bright on the diagonal."""
    n = len(images)
    sim = (text_features @ image_features.t()).numpy()
    fig = figure(figsize=(1.0 * n + 3.5, 1.0 * n + 1.2))
    grid = fig.add_gridspec(2, 1, height_ratios=[1, n], hspace=0.02)
    top = grid[0].subgridspec(1, n, wspace=0.05)
    for i in range(n):
        ax = fig.add_subplot(top[i])
        ax.imshow(_rgb(images[i]), cmap="gray")
        ax.axis("off")
    ax = fig.add_subplot(grid[1])
    ax.imshow(sim, cmap="viridis")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{sim[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="black" if sim[i, j] > sim.mean() else "white")
    ax.set_yticks(range(n), [textwrap.shorten(c, 38) for c in captions], fontsize=8)
    ax.set_xticks([])
    return _save(fig, path, tight=False)  # the gridspec is laid out by hand


def retrieval_grid(gallery_features: torch.Tensor, query_features: torch.Tensor, gallery: torch.Tensor,
                   queries: list[str], path: str | Path, k: int = 8) -> Path:
    """One row per text query: its top-k gallery images with their cosine similarity."""
    scores, idx = (query_features @ gallery_features.t()).topk(k, dim=1)
    fig, axes = subplots(len(queries), k, figsize=(1.1 * k + 0.5, 1.35 * len(queries)), squeeze=False)
    for r, query in enumerate(queries):
        for c in range(k):
            ax = axes[r, c]
            ax.imshow(_rgb(gallery[idx[r, c]]), cmap="gray")
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_xlabel(f"{scores[r, c]:.2f}", fontsize=7, labelpad=1)
        axes[r, 0].set_title(textwrap.shorten(query, 70), fontsize=8, loc="left")
    return _save(fig, path)
