"""Embed an image collection with a CLIP image tower: the in-process loop (the reference the Ray Data version in
`genlab.distributed.embed` is measured against) and the per-batch function both share.

Sources: a caption-set split or any parquet directory with `id` and raw `image` bytes (3x32x32 or 28x28), or a
folder of images (`**/*.png|jpg|jpeg|webp|bmp`, ids are paths relative to the folder).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow.parquet as pq
import torch
from tqdm.auto import tqdm

from genlab.multimodal.models import create_clip, encode_images, tower_image_size

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def decode_images(raw: list[bytes] | np.ndarray) -> torch.Tensor:
    """Raw parquet image bytes -> uint8 (B, 3, 32, 32) or (B, 28, 28)."""
    flat = np.frombuffer(b"".join(bytes(b) for b in raw), np.uint8)
    per = flat.size // max(1, len(raw))
    shape = (3, 32, 32) if per == 3 * 32 * 32 else (28, 28) if per == 28 * 28 else None
    if shape is None:
        raise ValueError(f"raw images of {per} bytes: expected 3x32x32 or 28x28")
    return torch.from_numpy(flat.copy()).reshape(-1, *shape)


def load_image_file(path: str | Path, size: int) -> np.ndarray:
    """An image file as uint8 RGB (size, size, 3), resized keeping nothing but the content (like the towers)."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB").resize((size, size), Image.BICUBIC))


class Embedder:
    """Batch dict -> {"id", "embedding"}: `image` is raw bytes (parquet) or uint8 (B, H, W, 3) arrays (files)."""

    def __init__(self, model: str, pretrained: str | None = None, threads: int = 0):
        if threads:
            torch.set_num_threads(threads)
        self.model, _, _ = create_clip(model, pretrained)
        self.model.eval()

    def __call__(self, batch: dict) -> dict:
        images = batch["image"]
        if isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 4:
            images = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
        else:
            images = decode_images(images)
        emb = encode_images(self.model, images, batch_size=len(images))
        return {"id": np.asarray(batch["id"]), "embedding": emb.numpy()}


def check_parquet_source(directory: str | Path) -> None:
    """A parquet source needs `id` and raw `image` columns (caption sets have them; MNIST shards have no id)."""
    first = sorted(Path(directory).glob("*.parquet"))[0]
    missing = {"id", "image"} - set(pq.read_schema(first).names)
    if missing:
        raise ValueError(f"{directory}: parquet without column(s) {sorted(missing)}; an index source needs `id` and "
                         "raw `image` bytes (e.g. --source captions:test_combos) or is a folder of image files")


def parquet_batches(directory: str | Path, batch_size: int) -> Iterator[dict]:
    check_parquet_source(directory)
    for path in sorted(Path(directory).glob("*.parquet")):
        for rb in pq.ParquetFile(path).iter_batches(batch_size=batch_size, columns=["id", "image"]):
            yield {"id": rb.column("id").to_numpy(zero_copy_only=False), "image": rb.column("image").to_pylist()}


def folder_batches(folder: str | Path, batch_size: int, size: int) -> Iterator[dict]:
    folder = Path(folder)
    paths = list_images(folder)
    for s in range(0, len(paths), batch_size):
        chunk = paths[s:s + batch_size]
        yield {"id": np.array([str(p.relative_to(folder)) for p in chunk]),
               "image": np.stack([load_image_file(p, size) for p in chunk])}


def count_rows(source: str | Path) -> int:
    source = Path(source)
    parquet = sorted(source.glob("*.parquet"))
    return sum(pq.read_metadata(p).num_rows for p in parquet) if parquet else len(list_images(source))


def embed_in_process(source: str | Path, model: str, pretrained: str | None = None, batch_size: int = 512,
                     progress: bool = True, timings: dict | None = None) -> tuple[list[str], torch.Tensor]:
    """One process, one loop: read, decode, embed. Returns (ids, L2-normalised embeddings); `timings` as in
    `genlab.distributed.embed.embed_with_ray`."""
    t0 = time.perf_counter()
    embedder = Embedder(model, pretrained)
    source = Path(source)
    size = tower_image_size(model)
    batches = (parquet_batches(source, batch_size) if any(source.glob("*.parquet"))
               else folder_batches(source, batch_size, size))
    ids, embs = [], []
    with tqdm(total=count_rows(source), desc="embed", unit="img", disable=not progress) as bar:
        for batch in batches:
            out = embedder(batch)
            if timings is not None and not ids:
                timings |= {"first_batch_s": time.perf_counter() - t0, "first_batch_rows": len(out["id"])}
            ids += out["id"].tolist()
            embs.append(torch.from_numpy(out["embedding"]))
            bar.update(len(out["id"]))
    return ids, torch.cat(embs) if embs else torch.empty(0, embedder.model.text_projection.shape[1])
