"""Write a dataset once to parquet shards; read them back locally or through Ray Data.

Schema: `image` (binary, raw uint8 bytes: 784 for a 28x28 grey image), `label` (int64); the image shape is in the
file's schema metadata (`genlab.shape`, e.g. "3,64,64" for a colour set; absent = 28x28). Caption sets
(`genlab.data.captions`) add `tokens` (the caption's BPE tokens, int32 bytes): their batches are (RGB images,
tokens). The same directory can be a local path here or an object-store URI on a cluster (Ray Data reads both).
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from genlab.data import captions
from genlab.data.atomic import publish
from genlab.data.mnist import default_root, load_dataset

IMAGE_SHAPE = (28, 28)


def shard_dir(name: str, split: str, root: str | Path | None = None) -> Path:
    if name.startswith("folder:"):  # a path in the name: a short stable directory name instead
        name = f"folder-{hashlib.sha1(name.encode()).hexdigest()[:12]}"
    return (Path(root) if root else default_root()) / "parquet" / name / split


def write_shards(images: torch.Tensor, labels: torch.Tensor, out_dir: Path, rows_per_shard: int = 10_000) -> Path:
    """Atomically write (images, labels) as parquet shards into out_dir."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    flat = images.reshape(len(images), -1).numpy()
    shape = {b"genlab.shape": ",".join(map(str, images.shape[1:])).encode()}
    for i, start in enumerate(range(0, len(flat), rows_per_shard)):
        chunk = flat[start:start + rows_per_shard]
        table = pa.table({"image": pa.array([row.tobytes() for row in chunk], pa.binary()),
                          "label": pa.array(labels[start:start + rows_per_shard].numpy(), pa.int64())},
                         metadata=shape)
        pq.write_table(table, tmp / f"part-{i:05d}.parquet")
    return publish(tmp, out_dir)


def ensure_shards(name: str, split: str, root: str | Path | None = None) -> Path:
    """Shard directory for (name, split), written on first use."""
    if captions.is_caption_set(name):
        return captions.ensure_caption_shards(name, split, shard_dir(captions.shard_name(name), split, root), root)
    out = shard_dir(name, split, root)
    if not any(out.glob("*.parquet")):
        images, labels = load_dataset(name, split, root)
        write_shards(images, labels, out)
    return out


def _shape_of(metadata: dict | None) -> tuple[int, ...]:
    raw = (metadata or {}).get(b"genlab.shape")
    return tuple(int(v) for v in raw.decode().split(",")) if raw else IMAGE_SHAPE


def shard_shape(directory: str | Path) -> tuple[int, ...]:
    """The image shape of a shard directory's rows, from its schema metadata (28x28 when it has none)."""
    first = next(iter(sorted(Path(directory).glob("*.parquet"))), None)
    return _shape_of(pq.read_schema(first).metadata if first is not None else None)


def decode_batch(batch: dict, shape: tuple[int, ...] = IMAGE_SHAPE) -> tuple[torch.Tensor, torch.Tensor]:
    """Columns as read by pyarrow or Ray Data (numpy) -> (uint8 (B, *shape), int64 labels (B,)), or for a
    caption set (uint8 (B, 3, 32, 32), int64 tokens (B, L))."""
    raw = b"".join(bytes(b) for b in batch["image"])
    images = torch.from_numpy(np.frombuffer(raw, dtype=np.uint8).copy())
    if "tokens" in batch:
        tokens = np.frombuffer(b"".join(bytes(b) for b in batch["tokens"]), dtype=np.int32)
        tokens = torch.from_numpy(tokens.astype(np.int64)).reshape(len(batch["image"]), -1)
        return images.reshape(-1, 3, captions.SIZE, captions.SIZE), tokens
    return images.reshape(-1, *shape), torch.from_numpy(np.array(batch["label"], dtype=np.int64))


def read_shards(directory: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    table = pq.read_table(str(directory))
    columns = ["image", "tokens"] if "tokens" in table.column_names else ["image", "label"]
    return decode_batch({c: table.column(c).to_pylist() if c != "label" else table.column(c).to_numpy()
                         for c in columns}, _shape_of(table.schema.metadata))
