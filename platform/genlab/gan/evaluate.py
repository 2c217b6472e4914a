"""Score a trained generator: FLD, precision/recall, class-histogram entropy (mode collapse), speed."""

from __future__ import annotations

import torch

from genlab.eval.sample_quality import score_sampler
from genlab.gan.models import GAN


def evaluate_generator(gan: GAN, n: int, dataset: str = "mnist", quick: bool = False, seed: int = 0,
                       inception: bool = False) -> dict:
    """n samples (class-balanced labels for a conditional G) -> quality metrics + samples/s (`inception`: and
    FID on Inception-v3 features)."""
    labels = torch.arange(n) % gan.cfg.num_classes if gan.cfg.num_classes else None
    out = score_sampler(lambda: gan.generate(n, labels=labels, seed=seed), dataset, quick, requested=labels,
                        inception=inception)
    out.pop("images")
    return out
