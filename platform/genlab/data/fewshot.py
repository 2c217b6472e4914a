"""Many-class image sets for few-shot learning: one container, a disk cache, and the script/alphabet split."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from genlab.data.mnist import default_root
from genlab.data.shards import read_shards, write_shards


@dataclass
class FewShotSet:
    """`images` (N, H, W) uint8, ink bright on black; `labels` (N,) class index; per class a name and a group
    (the alphabet or script it belongs to, the unit of the train/val/test split)."""

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    class_groups: list[str]

    def __post_init__(self):
        if len(self.class_names) != len(self.class_groups):
            raise ValueError("class_names and class_groups must have one entry per class")
        if len(self.labels) and int(self.labels.max()) >= len(self.class_names):
            raise ValueError("a label has no class name")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def groups(self) -> list[str]:
        return sorted(set(self.class_groups))

    def by_class(self) -> list[torch.Tensor]:
        """Images of each class, in class-index order."""
        order = torch.argsort(self.labels, stable=True)
        counts = torch.bincount(self.labels, minlength=self.num_classes).tolist()
        return list(torch.split(self.images[order], counts))

    def subset_groups(self, groups) -> "FewShotSet":
        """Only the classes whose group is in `groups`, relabelled 0..C-1."""
        groups = set(groups)
        keep = [c for c, g in enumerate(self.class_groups) if g in groups]
        if not keep:
            raise ValueError(f"no classes in groups {sorted(groups)}; available: {self.groups}")
        remap = torch.full((self.num_classes,), -1, dtype=torch.int64)
        remap[keep] = torch.arange(len(keep))
        mask = remap[self.labels] >= 0
        return FewShotSet(self.images[mask], remap[self.labels[mask]], [self.class_names[c] for c in keep],
                          [self.class_groups[c] for c in keep])

    def save(self, directory: str | Path) -> Path:
        """Parquet shards + `_classes.json`, written to a temp folder and renamed into place (atomic)."""
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
        try:
            write_shards(self.images, self.labels, tmp)
            (tmp / "_classes.json").write_text(json.dumps({"names": self.class_names, "groups": self.class_groups,
                                                           "shape": list(self.images.shape[1:])}))
            if directory.exists():
                shutil.rmtree(directory)
            os.replace(tmp, directory)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if not (directory / "_classes.json").exists():  # not just another process finishing first
                raise
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "FewShotSet":
        directory = Path(directory)
        meta = json.loads((directory / "_classes.json").read_text())
        images, labels = read_shards(directory)
        return cls(images.reshape(-1, *meta["shape"]), labels, meta["names"], meta["groups"])


def split_groups(groups: list[str], fractions=(0.7, 0.1, 0.2), salt: str = "genlab") -> dict[str, list[str]]:
    """Deterministic train/val/test split of groups (scripts) by a hash of each name alone: adding or merging
    groups never moves the others. Every split gets at least one group."""
    def position(g: str) -> float:
        return int(hashlib.sha256(f"{salt}:{g}".encode()).hexdigest()[:12], 16) / 16**12

    out = {"train": [], "val": [], "test": []}
    for g in sorted(set(groups)):
        p = position(g)
        out["train" if p < fractions[0] else "val" if p < fractions[0] + fractions[1] else "test"].append(g)
    for name in ("val", "test"):  # tiny group lists: move the train group nearest the boundary
        if not out[name] and len(out["train"]) > 1:
            out[name].append(out["train"].pop(max(range(len(out["train"])), key=lambda i: position(out["train"][i]))))
    return out


def cache_dir(name: str, root: str | Path | None = None) -> Path:
    return (Path(root) if root else default_root()) / "fewshot" / name


def cached(name: str, build, root: str | Path | None = None) -> FewShotSet:
    """Load `name` from the disk cache, building (and caching) it with `build()` the first time. Several
    processes (Ray Train workers) may build at once: each renames a complete copy into place."""
    directory = cache_dir(name, root)
    if (directory / "_classes.json").exists():
        return FewShotSet.load(directory)
    data = build()
    data.save(directory)
    return data


def from_arrays(per_class: list[np.ndarray], names: list[str], groups: list[str]) -> FewShotSet:
    images = torch.from_numpy(np.concatenate(per_class)).to(torch.uint8)
    labels = torch.cat([torch.full((len(x),), i, dtype=torch.int64) for i, x in enumerate(per_class)])
    return FewShotSet(images, labels, names, groups)
