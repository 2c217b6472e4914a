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

    def sample_batch(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """`n` images of classes drawn uniformly (a quarter turn is its own class), for plain classification:
        (n, 1, H, W) floats and labels in 0..num_classes-1 (class index * turns + quarter turns)."""
        virtual = torch.randint(self.num_classes, (n,), generator=generator)
        images = []
        for v in virtual.tolist():
            c, turns = divmod(v, self.turns)
            img = self.images[c][int(torch.randint(len(self.images[c]), (1,), generator=generator))]
            images.append(torch.rot90(img, turns, dims=(0, 1)) if turns else img)
        return to_float(torch.stack(images)), virtual


def random_affine(images: torch.Tensor, generator: torch.Generator | None = None, rotate: float = 0.26,
                  scale: float = 0.15, shear: float = 0.2, translate: float = 0.1) -> torch.Tensor:
    """Each (C, H, W) image of the batch under its own random affine map: rotation up to `rotate` radians, scale
    in 1 +- `scale`, shear up to `shear`, shift up to `translate` of the width. A drawer's hand varies this way
    (Omniglot's 20 drawers per character); on few hand-drawn classes it is new data for every episode."""
    n = len(images)
    u = lambda: torch.rand(n, generator=generator) * 2 - 1  # noqa: E731 - uniform in [-1, 1]
    angle, s, sh = u() * rotate, 1 + u() * scale, u() * shear
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    theta = torch.stack([torch.stack([cos, sin + sh * cos, u() * translate * 2], 1),
                         torch.stack([-sin, cos - sh * sin, u() * translate * 2], 1)], 1)  # output -> input coords
    grid = torch.nn.functional.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return torch.nn.functional.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def augment(ep: Episode, generator: torch.Generator | None = None) -> Episode:
    """The episode with every support and query image independently warped by `random_affine`."""
    return Episode(random_affine(ep.support, generator), ep.support_labels, random_affine(ep.query, generator),
                   ep.query_labels, ep.classes)


class MixedEpisodeSampler:
    """Each episode comes whole from one of several samplers, picked with the given probabilities: e.g. half the
    episodes from a few hand-drawn classes, half from thousands of rendered glyphs (drawn uniformly over all
    classes, the hand-drawn ones would be 2% of the episodes' classes)."""

    def __init__(self, samplers: list[EpisodeSampler], weights: list[float]):
        if len(samplers) != len(weights) or not samplers or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"one non-negative weight per sampler, not all zero; got {weights}")
        self.samplers = samplers
        self.cum = torch.cumsum(torch.tensor(weights, dtype=torch.float64) / sum(weights), 0)

    @property
    def num_classes(self) -> int:
        return sum(s.num_classes for s in self.samplers)

    def sample(self, generator: torch.Generator | None = None) -> Episode:
        return self.samplers[self._pick(1, generator)[0]].sample(generator)

    def sample_batch(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """`n` images, each from a source picked with its probability; labels of source i start after the classes
        of sources 0..i-1."""
        picks = torch.tensor(self._pick(n, generator))
        images, labels, offset = [], [], 0
        for i, sampler in enumerate(self.samplers):
            count = int((picks == i).sum())
            if count:
                x, y = sampler.sample_batch(count, generator)
                images.append(x)
                labels.append(y + offset)
            offset += sampler.num_classes
        return torch.cat(images), torch.cat(labels)

    def _pick(self, n: int, generator: torch.Generator | None) -> list[int]:
        u = torch.rand(n, generator=generator, dtype=torch.float64)
        return torch.searchsorted(self.cum, u).clamp_max(len(self.samplers) - 1).tolist()
