"""Losses of chapter 5.1/5.2. Sums over pixels and latent dims, means over the batch (the seed's convention
sums over the batch too; per-example values make numbers comparable across batch sizes)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def add_gaussian_noise(x: torch.Tensor, factor: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Denoising AE corruption: x + factor * N(0, 1), clamped to [0, 1]."""
    noise = torch.randn(x.shape, generator=generator, device=x.device) if generator is not None \
        else torch.randn_like(x)
    return (x + factor * noise).clamp(0.0, 1.0)


def bce_sum(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Bernoulli negative log-likelihood per example, summed over pixels: (B,)."""
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(1)


def kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per example: -1/2 sum(1 + logvar - mu^2 - exp(logvar)), (B,)."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)


def vae_loss(logits, x, mu, logvar, beta: float = 1.0) -> dict[str, torch.Tensor]:
    """Negative beta-ELBO averaged over the batch: BCE + beta * KL (beta=1 gives the ELBO)."""
    rec, kl = bce_sum(logits, x).mean(), kl_standard_normal(mu, logvar).mean()
    return {"loss": rec + beta * kl, "recon": rec, "kl": kl}


def ae_loss(logits, target, z, sparsity_weight: float = 0.0) -> dict[str, torch.Tensor]:
    """Per-pixel MSE of sigmoid(logits) against the clean target, plus lambda * mean |z|_1 for sparse AEs."""
    mse = F.mse_loss(torch.sigmoid(logits), target)
    l1 = z.abs().sum(1).mean()
    return {"loss": mse + sparsity_weight * l1, "mse": mse, "l1": l1}
