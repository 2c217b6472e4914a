"""Reconstruction metrics on a test set: per-pixel MSE, per-image BCE (nats), PSNR (dB)."""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F


def psnr(mse: float, max_value: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB of a mean squared error on [0, max_value] images."""
    return 10.0 * math.log10(max_value ** 2 / mse) if mse > 0 else float("inf")


@torch.no_grad()
def reconstruction_metrics(reconstruct: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                           batch_size: int = 1000, corrupt: Callable[[torch.Tensor], torch.Tensor] | None = None,
                           device: str | torch.device = "cpu") -> dict[str, float]:
    """`reconstruct` maps float images in [0, 1] (B, 1, 28, 28) to reconstructions in [0, 1].

    With `corrupt`, the input is corrupted first and the target stays clean (denoising); then the noisy input's
    own MSE/PSNR against the clean image is reported too, so the gain is visible.
    """
    sums = {"mse": 0.0, "bce": 0.0, "noisy_mse": 0.0}
    n = 0
    for start in range(0, len(images), batch_size):
        clean = to_float(images[start:start + batch_size]).to(device)
        inp = corrupt(clean) if corrupt else clean
        out = reconstruct(inp).clamp(1e-7, 1 - 1e-7)
        sums["mse"] += F.mse_loss(out, clean, reduction="sum").item()
        sums["bce"] += F.binary_cross_entropy(out, clean, reduction="sum").item()
        sums["noisy_mse"] += F.mse_loss(inp, clean, reduction="sum").item()
        n += len(clean)
    pixels = n * images[0].numel()
    mse = sums["mse"] / pixels
    out = {"mse": mse, "bce_per_image": sums["bce"] / n, "psnr_db": psnr(mse)}
    if corrupt:
        noisy = sums["noisy_mse"] / pixels
        out |= {"noisy_mse": noisy, "noisy_psnr_db": psnr(noisy), "psnr_gain_db": psnr(mse) - psnr(noisy)}
    return out


def to_signed(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 28, 28) -> float (B, 1, 28, 28) in [-1, 1] (the tanh / diffusion range)."""
    x = images.float().div(127.5).sub(1) if images.dtype == torch.uint8 else images.float().mul(2).sub(1)
    return x.unsqueeze(1) if x.dim() == 3 else x


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 28, 28) -> float (B, 1, 28, 28) in [0, 1]; float input passes through with a channel dim."""
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    return x.unsqueeze(1) if x.dim() == 3 else x
