"""Small pieces every family's training loop shares: steps per epoch, the LR schedule, EMA weights."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def steps_per_epoch(n_train: int, batch_size: int, max_steps: int = 0) -> int:
    """Full batches per epoch (drop_last), optionally capped at max_steps (smoke runs)."""
    steps = n_train // max(1, batch_size)
    if steps < 1:
        raise ValueError(f"batch_size {batch_size} is larger than the training set ({n_train} images)")
    return min(steps, max_steps) if max_steps else steps


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0,
                  cosine: bool = True) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up to the optimizer's lr, then a cosine to 0 at total_steps (or flat with cosine=False)."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if not cosine:
            return 1.0
        progress = min(step - warmup_steps, total_steps - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * progress))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def make_ema(model: nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of `model`'s weights and buffers (torch's AveragedModel)."""
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def grad_norm(parameters) -> float:
    grads = [p.grad.detach().norm() for p in parameters if p.grad is not None]
    return float(torch.stack(grads).norm()) if grads else 0.0
