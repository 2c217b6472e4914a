"""Score a trained generator: FLD, precision/recall, class-histogram entropy (mode collapse), speed."""

from __future__ import annotations

import time

import torch

from genlab.eval.sample_quality import sample_quality
from genlab.gan.models import GAN


def evaluate_generator(gan: GAN, n: int, dataset: str = "mnist", quick: bool = False, seed: int = 0) -> dict:
    """n samples (class-balanced labels for a conditional G) -> quality metrics + samples/s."""
    labels = torch.arange(n) % gan.cfg.num_classes if gan.cfg.num_classes else None
    t0 = time.perf_counter()
    images = gan.generate(n, labels=labels, seed=seed)
    seconds = time.perf_counter() - t0
    return sample_quality(images, dataset, quick, requested=labels) | {"samples_per_s": n / seconds,
                                                                       "sampling_s": seconds}
