"""The GAN chapter's figures: a fixed-noise grid per epoch, diagnostics curves, final samples."""

from __future__ import annotations

from pathlib import Path

import torch

from genlab.core.plotting import plot_curves, save_image_grid
from genlab.core.rundir import read_metrics
from genlab.gan.models import GAN


@torch.no_grad()
def epoch_grid(generator, fixed: tuple[torch.Tensor, torch.Tensor | None], run_dir: Path, epoch: int) -> Path:
    was_training = generator.training
    images = (generator.eval()(*fixed).cpu() + 1) / 2
    generator.train(was_training)
    return save_image_grid(images, Path(run_dir) / "epochs" / f"samples_epoch{epoch:03d}.png", nrow=8,
                           title=f"epoch {epoch} (fixed noise{', row = class' if fixed[1] is not None else ''})")


def write_figures(cfg, gan: GAN, run_dir: str | Path) -> list[Path]:
    run_dir = Path(run_dir)
    labels = torch.arange(min(cfg.model.num_classes, 10)).repeat_interleave(10) if cfg.model.num_classes else None
    images = gan.generate(100, labels=labels, seed=cfg.seed)
    paths = [save_image_grid(images, run_dir / "samples.png", nrow=10,
                             title=f"{cfg.run_name()} samples" + (" (row = class)" if labels is not None else ""))]
    records = [r for r in read_metrics(run_dir / "metrics.jsonl") if "train/loss_d" in r]
    paths.append(plot_curves(records, [f"train/{k}" for k in ("loss_d", "loss_g", "d_real", "d_fake",
                                                                "grad_norm_d", "grad_norm_g")],
                             run_dir / "diagnostics.png", x="step", title=f"{cfg.run_name()} diagnostics"))
    return paths
