"""A disentanglement proxy for data with one known factor (the class): the mutual information gap (MIG, Chen et
al. 2018) restricted to that factor: (I(z_a; y) - I(z_b; y)) / H(y) for the two latents a, b most informative
about y, each latent discretised into equal-width bins."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import mutual_info_score


def class_mig(codes: np.ndarray, labels: np.ndarray, bins: int = 20) -> dict[str, float]:
    """`codes` (N, D) posterior means, `labels` (N,). Returns the gap and the top latent's normalised MI."""
    codes, labels = np.asarray(codes), np.asarray(labels)
    if codes.ndim != 2 or codes.shape[1] < 2:
        raise ValueError(f"MIG needs (N, D>=2) codes, got shape {codes.shape}")
    h_y = mutual_info_score(labels, labels)  # entropy of the labels, in nats
    mi = []
    for j in range(codes.shape[1]):
        edges = np.histogram_bin_edges(codes[:, j], bins=bins)
        mi.append(mutual_info_score(labels, np.digitize(codes[:, j], edges[1:-1])))
    top = np.sort(mi)[::-1]
    return {"mig": float((top[0] - top[1]) / h_y), "top_mi": float(top[0] / h_y)}
