"""The prior p(z | e): a mixture of diagonal Gaussians over the VAE latent z, its weights, means and scales
computed from a CLIP embedding e by an MLP (a mixture density network, Bishop 1994).

A regressor e -> z would collapse every prompt of a digit onto one latent (one image); the mixture models the
spread of the digit's posteriors, so one prompt samples many styles. Trained by maximum likelihood on pairs
(embedding of a caption of x, z ~ q(z | x)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

LOG_SIGMA_RANGE = (-7.0, 2.0)  # keeps a component from collapsing onto one training latent


@dataclass
class PriorConfig:
    embed_dim: int = 128
    """Size of the CLIP embedding (the text tower's output)."""
    latent_dim: int = 32
    """Size of the VAE latent."""
    components: int = 30
    """Gaussians in the mixture (measured: 30 are more faithful than 10, each one tighter)."""
    hidden: int = 512
    """Width of the MLP's two hidden layers."""

    def __post_init__(self):
        if min(self.embed_dim, self.latent_dim, self.components, self.hidden) < 1:
            raise ValueError(f"prior sizes must be >= 1, got {self}")


class MixturePrior(nn.Module):
    def __init__(self, cfg: PriorConfig = PriorConfig()):
        super().__init__()
        self.cfg = cfg
        k, d = cfg.components, cfg.latent_dim
        self.net = nn.Sequential(nn.Linear(cfg.embed_dim, cfg.hidden), nn.SiLU(),
                                 nn.Linear(cfg.hidden, cfg.hidden), nn.SiLU(),
                                 nn.Linear(cfg.hidden, k * (1 + 2 * d)))

    def forward(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Unit-norm embeddings (B, D) -> (log weights (B, K), means (B, K, d), log scales (B, K, d))."""
        k, d = self.cfg.components, self.cfg.latent_dim
        out = self.net(e * math.sqrt(self.cfg.embed_dim))  # unit norm -> coordinates of unit variance
        logits, mu, log_sigma = out.split([k, k * d, k * d], dim=1)
        log_sigma = log_sigma.view(-1, k, d).clamp(*LOG_SIGMA_RANGE)
        return F.log_softmax(logits, dim=1), mu.view(-1, k, d), log_sigma

    def log_prob(self, e: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(z | e) per row (B,)."""
        log_w, mu, log_sigma = self(e)
        comp = -0.5 * (((z[:, None] - mu) / log_sigma.exp()) ** 2 + 2 * log_sigma + math.log(2 * math.pi)).sum(2)
        return torch.logsumexp(log_w + comp, dim=1)

    @torch.no_grad()
    def sample(self, e: torch.Tensor, generator: torch.Generator | None = None,
               temperature: float = 1.0) -> torch.Tensor:
        """One latent per row of `e`: a component by its weight, then its Gaussian with scales x temperature."""
        log_w, mu, log_sigma = self(e)
        k = torch.multinomial(log_w.exp(), 1, generator=generator).squeeze(1)
        rows = torch.arange(len(e), device=e.device)
        eps = torch.randn(mu.shape[0], mu.shape[2], generator=generator, device=e.device)
        return mu[rows, k] + temperature * log_sigma[rows, k].exp() * eps


def noised_image_embedding(e: torch.Tensor, noise: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """LAFITE's trick (Zhou et al. 2022) for unit-norm embeddings: normalize(e + noise * u), u a random unit
    vector; the cosine to e is then about 1 / sqrt(1 + noise^2), so `noise` sets how far from the image embedding
    (and towards where text embeddings of it lie) the prior learns to read."""
    u = torch.randn(e.shape, generator=generator, device=e.device)
    return F.normalize(e + noise * F.normalize(u, dim=1), dim=1)
