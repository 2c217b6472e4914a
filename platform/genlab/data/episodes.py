"""Episodic sampling for few-shot learning: N classes, K support and Q query images each, optionally with the
x90-degree rotations of every class counted as new classes (Santoro et al. 2016; Vinyals et al. 2016)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from genlab.data.fewshot import FewShotSet
from genlab.eval.reconstruction import to_float


@dataclass
class Episode:
    support: torch.Tensor         # (N*K, 1, H, W) float in [0, 1], class-major: K images of class 0, then 1, ...
    support_labels: torch.Tensor  # (N*K,) in 0..N-1
    query: torch.Tensor           # (N*Q, 1, H, W)
    query_labels: torch.Tensor    # (N*Q,)
    classes: list[tuple[int, int]]  # (class index in the set, quarter turns) of each episode class

    @property
    def n_way(self) -> int:
        return len(self.classes)

    def to(self, device) -> "Episode":
        return Episode(self.support.to(device), self.support_labels.to(device), self.query.to(device),
                       self.query_labels.to(device), self.classes)


class EpisodeSampler:
    """Draws episodes from a FewShotSet; every class needs at least K + Q images."""

    def __init__(self, data: FewShotSet, n_way: int = 5, k_shot: int = 1, n_query: int = 15, rotations: bool = False):
        if min(n_way, k_shot, n_query) < 1:
            raise ValueError(f"n_way, k_shot and n_query must be >= 1, got {n_way}, {k_shot}, {n_query}")
        per_class = data.by_class()
        self.images = [x for x in per_class if len(x) >= k_shot + n_query]
        self.class_ids = [i for i, x in enumerate(per_class) if len(x) >= k_shot + n_query]
        self.turns = 4 if rotations else 1
        available = len(self.images) * self.turns
        if available < n_way:
            raise ValueError(f"{n_way}-way episodes need {n_way} classes with >= {k_shot + n_query} images each; "
                             f"this set has {available}" + (" (rotations included)" if rotations else ""))
        self.n_way, self.k_shot, self.n_query = n_way, k_shot, n_query

    @property
    def num_classes(self) -> int:
        """Classes an episode can draw from (x4 with rotations)."""
        return len(self.images) * self.turns

    def sample(self, generator: torch.Generator | None = None) -> Episode:
        picks = torch.randperm(self.num_classes, generator=generator)[: self.n_way].tolist()
        support, query, classes = [], [], []
        for virtual in picks:
            c, turns = divmod(virtual, self.turns)
            imgs = self.images[c]
            chosen = imgs[torch.randperm(len(imgs), generator=generator)[: self.k_shot + self.n_query]]
            chosen = torch.rot90(chosen, turns, dims=(1, 2)) if turns else chosen
            support.append(chosen[: self.k_shot])
            query.append(chosen[self.k_shot:])
            classes.append((self.class_ids[c], turns))
        labels = lambda n: torch.arange(self.n_way).repeat_interleave(n)  # noqa: E731
        return Episode(to_float(torch.cat(support)), labels(self.k_shot), to_float(torch.cat(query)),
                       labels(self.n_query), classes)
