"""Few-shot accuracy over many test episodes, with the 95% confidence interval used in the literature."""

from __future__ import annotations

import math

import numpy as np


def mean_ci95(accuracies) -> tuple[float, float]:
    """(mean, half-width of the 95% normal-approximation interval = 1.96 * sample std / sqrt(n))."""
    acc = np.asarray(accuracies, dtype=np.float64)
    if acc.size < 2:
        raise ValueError("a confidence interval needs at least 2 episodes")
    return float(acc.mean()), float(1.96 * acc.std(ddof=1) / math.sqrt(acc.size))
