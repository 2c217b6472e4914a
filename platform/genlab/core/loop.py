"""Small pieces every family's training step shares: steps per epoch, the LR schedule, EMA weights."""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.lr_scheduler import CosineAnnealingLR, ConstantLR, LinearLR, SequentialLR
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def steps_per_epoch(n_train: int, batch_size: int, max_steps: int = 0) -> int:
    """Full batches per epoch (drop_last), optionally capped at max_steps (smoke runs)."""
    steps = n_train // max(1, batch_size)
    if steps < 1:
        raise ValueError(f"batch_size {batch_size} is larger than the training set ({n_train} images)")
    return min(steps, max_steps) if max_steps else steps


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0,
                  cosine: bool = True) -> torch.optim.lr_scheduler.LRScheduler:
    """torch's schedulers: linear warm-up to the optimizer's lr, then a cosine to 0 at total_steps (or flat)."""
    after = (CosineAnnealingLR(optimizer, T_max=max(1, total_steps - warmup_steps)) if cosine
             else ConstantLR(optimizer, factor=1.0, total_iters=0))
    if not warmup_steps:
        return after
    warm = LinearLR(optimizer, start_factor=1.0 / warmup_steps, total_iters=warmup_steps - 1)
    return SequentialLR(optimizer, [warm, after], milestones=[warmup_steps])


def make_ema(model: nn.Module, decay: float, buffers: str = "average") -> AveragedModel:
    """An exponential moving average of `model`'s weights (torch's AveragedModel), its buffers (BatchNorm
    statistics) averaged too (`buffers="average"`) or copied from `model` at each `update_ema` ("copy": the
    statistics follow the live network at once; an average of them lags the many steps the decay implies,
    which matters where they start far from their trained values, as in the DCGAN paper's nets)."""
    if buffers not in ("average", "copy"):
        raise ValueError(f"buffers must be 'average' or 'copy', got {buffers!r}")
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=buffers == "average")
    ema.copy_buffers = buffers == "copy"
    return ema


@torch.no_grad()
def update_ema(ema: AveragedModel, model: nn.Module) -> None:
    """One EMA step of the weights; the buffers averaged or copied as `make_ema` was told."""
    ema.update_parameters(model)
    if getattr(ema, "copy_buffers", False):
        for mine, live in zip(ema.module.buffers(), model.buffers()):
            mine.copy_(live)
