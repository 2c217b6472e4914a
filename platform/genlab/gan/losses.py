"""The seed's GAN objective: binary cross-entropy on D's logits, non-saturating generator loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor,
                       label_smoothing: float = 0.0) -> torch.Tensor:
    """(BCE(D(x), 1 - smoothing) + BCE(D(G(z)), 0)) / 2; smoothing > 0 is one-sided label smoothing
    (Salimans et al. 2016): only the real targets move, to 1 - smoothing."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.full_like(real_logits, 1.0 - label_smoothing))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return (real + fake) / 2


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating loss: BCE(D(G(z)), 1) = -log D(G(z))."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
