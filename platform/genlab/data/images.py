"""Colour image sets beyond MNIST: CIFAR-10, CelebA (64x64, as in the DCGAN paper), any image folder, and the
offline synthetic faces (`faces`, 64x64; `faces@32` at 32x32). Each split is uint8 (N, 3, H, W) with int64
labels, like `load_dataset`'s grey sets.

CIFAR-10 and CelebA come from torchvision's files under the data root, else torchvision's download (users with
the internet); offline the error names what to run or where to put the files. `folder:<dir>[@<size>]` reads every
png/jpg/bmp under <dir> (recursively), centre-cropped to a square and resized (64 by default); a top-level
sub-folder per class gives labels, and a seeded tenth of the files is the test split.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image

log = logging.getLogger(__name__)

IMAGE_SETS = ("cifar10", "celeba", "faces")
FOLDER = re.compile(r"^folder:(?P<dir>.+?)(?:@(?P<size>\d+))?$")
FACES = re.compile(r"^faces(?:@(?P<size>\d+))?$")
EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp"}
FACES_SIZES = {"train": 10_000, "test": 1_000}
CELEBA_SIZE = 64
HOW_TO_GET = {
    "cifar10": "connect to the internet once and run: python -c \"import torchvision; "
               "torchvision.datasets.CIFAR10('{root}', download=True)\" (or copy cifar-10-batches-py/ into {root})",
    "celeba": "connect to the internet once and run: python -c \"import torchvision; "
              "torchvision.datasets.CelebA('{root}', download=True)\"; Google Drive often refuses that download: "
              "then put img_align_celeba.zip (unzipped) and the list_*.txt / identity_CelebA.txt files from "
              "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html into {root}/celeba/. Offline, --train.dataset "
              "faces trains on the synthetic faces instead",
}


def is_image_set(name: str) -> bool:
    return name in IMAGE_SETS or bool(FOLDER.match(name) or FACES.match(name))


def run_tag(name: str) -> str:
    """A colour set's part of run names, its kind and size ('faces32', 'folder64', 'cifar1032'); '' otherwise."""
    return f"{name.split(':')[0].split('@')[0]}{image_shape(name)[1]}" if is_image_set(name) else ""


def image_shape(name: str) -> tuple[int, int, int]:
    """(C, H, W) of a colour set's images, known without loading it."""
    if name == "cifar10":
        return 3, 32, 32
    if match := FOLDER.match(name) or FACES.match(name):
        size = int(match["size"] or 64)
        return 3, size, size
    if name == "celeba":
        return 3, CELEBA_SIZE, CELEBA_SIZE
    raise ValueError(f"{name!r} is not a colour image set ({IMAGE_SETS} or folder:<dir>[@<size>])")


def load_images(name: str, split: str, root: Path, download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Images uint8 (N, 3, H, W) and labels int64 (N,) of a colour set's split ('train' | 'test')."""
    from genlab.data.mnist import DatasetUnavailable

    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}; choose 'train' or 'test'")
    if match := FACES.match(name):
        from genlab.data.faces import make_faces

        return make_faces(FACES_SIZES[split], split, size=int(match["size"] or 64))
    if match := FOLDER.match(name):
        return load_image_folder(Path(match["dir"]).expanduser(), split, int(match["size"] or 64))
    loader = {"cifar10": _cifar10, "celeba": _celeba}.get(name)
    if loader is None:
        raise ValueError(f"unknown image set {name!r}; choose one of {IMAGE_SETS} or folder:<dir>[@<size>]")
    errors = []
    for allow_download in (False, True) if download else (False,):
        try:
            images, labels = loader(root, split, allow_download)
            return torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(np.asarray(labels, np.int64))
        except Exception as err:  # noqa: BLE001 - missing files or no network: both mean "not available here"
            errors.append(f"{'download' if allow_download else f'files under {root}'}: {type(err).__name__}: {err}")
    raise DatasetUnavailable(f"{name} ({split}) is not available. Tried:\n  " + "\n  ".join(errors)
                             + "\nTo fix: " + HOW_TO_GET[name].format(root=root) + ".")


def _cifar10(root: Path, split: str, download: bool):
    from torchvision import datasets

    ds = datasets.CIFAR10(str(root), train=split == "train", download=download)
    return ds.data.transpose(0, 3, 1, 2), ds.targets


def _celeba(root: Path, split: str, download: bool):
    """Aligned CelebA, resized so the short side is 64 and centre-cropped (the DCGAN paper's preprocessing as in
    PyTorch's DCGAN example); label 1 = the 'Smiling' attribute."""
    from torchvision import datasets
    from tqdm.auto import tqdm

    ds = datasets.CelebA(str(root), split="valid" if split == "test" else "train", target_type="attr",
                         download=download)
    smiling = ds.attr_names.index("Smiling")
    images = np.empty((len(ds.filename), 3, CELEBA_SIZE, CELEBA_SIZE), np.uint8)
    folder = Path(ds.root) / ds.base_folder / "img_align_celeba"
    for i, fname in enumerate(tqdm(ds.filename, desc=f"celeba {split} -> 64x64", mininterval=5)):
        images[i] = _square(Image.open(folder / fname), CELEBA_SIZE).transpose(2, 0, 1)
    return images, ds.attr[:, smiling].numpy()


def _square(image: Image.Image, size: int) -> np.ndarray:
    """RGB, the short side resized to `size`, centre-cropped to size x size."""
    image = image.convert("RGB")
    w, h = image.size
    scale = size / min(w, h)
    image = image.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
    w, h = image.size
    left, top = (w - size) // 2, (h - size) // 2
    return np.asarray(image.crop((left, top, left + size, top + size)))


def load_image_folder(directory: Path, split: str, size: int = 64,
                      test_fraction: float = 0.1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image under `directory` as uint8 (N, 3, size, size); the label is the index of its top-level
    sub-folder among them (sorted; files directly in `directory` form one more group, sorted first). A seeded
    `test_fraction` of the files (at least one) is the test split, the rest train."""
    if not directory.is_dir():
        raise FileNotFoundError(f"image folder {directory} does not exist")
    if size < 8:
        raise ValueError(f"image size must be >= 8, got {size}")
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in EXTENSIONS)
    if len(files) < 2:
        raise ValueError(f"{directory} needs at least 2 images ({', '.join(sorted(EXTENSIONS))}), found {len(files)}")
    group = lambda p: p.relative_to(directory).parts[0] if p.parent != directory else ""  # noqa: E731
    classes = sorted({group(p) for p in files})
    order = np.random.default_rng(seed).permutation(len(files))
    n_test = max(1, round(len(files) * test_fraction))
    chosen = sorted(order[:n_test] if split == "test" else order[n_test:])
    images, labels = [], []
    for i in chosen:
        try:
            images.append(_square(Image.open(files[i]), size).transpose(2, 0, 1))
        except OSError as err:
            raise ValueError(f"{files[i]}: not a readable image ({err}); remove it or fix it") from err
        labels.append(classes.index(group(files[i])))
    log.info("folder %s (%s): %d images at %dx%d, %d classes", directory, split, len(images), size, size,
             len(classes))
    return torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.int64)
