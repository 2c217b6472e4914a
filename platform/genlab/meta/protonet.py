"""Prototypical Networks (Snell et al. 2017): a class is the mean embedding of its support images; a query is
scored by the negative squared Euclidean distance to each prototype. Wraps any encoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def prototypes(embeddings: torch.Tensor, labels: torch.Tensor, n_way: int) -> torch.Tensor:
    """(S, D) support embeddings with labels in 0..n_way-1 -> (n_way, D) class means."""
    one_hot = F.one_hot(labels, n_way).to(embeddings.dtype)  # (S, N)
    counts = one_hot.sum(0)
    if (counts == 0).any():
        raise ValueError(f"every one of the {n_way} classes needs a support example; counts {counts.tolist()}")
    return (one_hot.T @ embeddings) / counts[:, None]


def squared_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(Q, D), (N, D) -> (Q, N) squared Euclidean distances."""
    return (x.pow(2).sum(1, keepdim=True) - 2 * x @ y.T + y.pow(2).sum(1)[None]).clamp_min(0)


class ProtoNet(nn.Module):
    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, support: torch.Tensor, support_labels: torch.Tensor, query: torch.Tensor,
                n_way: int) -> torch.Tensor:
        """Logits (Q, n_way) = -||f(query) - c_k||^2. The support labels are an explicit argument."""
        z = self.encoder(torch.cat([support, query]))  # one pass: BatchNorm sees the whole episode
        return self.logits(z, support_labels, n_way)

    @staticmethod
    def logits(z: torch.Tensor, support_labels: torch.Tensor, n_way: int) -> torch.Tensor:
        """Logits of the query embeddings from the embeddings (support first, then queries) of one episode."""
        protos = prototypes(z[: len(support_labels)], support_labels, n_way)
        return -squared_distances(z[len(support_labels):], protos)
