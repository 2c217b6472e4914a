"""An embedding index over image collections: exact top-k by matrix product, optionally faiss for large ones.

On disk an index is a directory: `embeddings.parquet` (id, embedding as float16 list) and `index.json` (model,
weights, dimension, count). In memory the embeddings are float32 (an fp32 GEMV is what a CPU does fastest);
every row is L2-normalised, so scores are cosine similarities. `add` appends (incremental indexing), `save`
rewrites the files atomically, `EmbeddingIndex.load` reads them back. Two writers of one directory (the search
server and `jobs/index.py`) are safe: `save` holds the directory's lock file, and merges in first what another
writer saved since this copy was loaded or last saved. `build_ann` builds a faiss IVF-Flat or
HNSW index (inner product) for collections where exact search gets slow; its recall against exact is reported
by `recall_vs_exact`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch


def _stamp(directory: Path) -> int | None:
    try:
        return (directory / "index.json").stat().st_mtime_ns
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def writer_lock(directory: Path):
    """An exclusive flock on `directory/.writer.lock` (released when the holder exits or dies)."""
    with open(directory / ".writer.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class EmbeddingIndex:
    def __init__(self, dim: int, model: str = "", pretrained: str = ""):
        self.dim, self.model, self.pretrained = dim, model, pretrained
        self.ids: list[str] = []
        self.embeddings = torch.empty(0, dim)
        self.ann = None
        self._id_set: set[str] = set()
        self._disk_stamp: int | None = None  # index.json's mtime when this copy last matched the disk

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, item_id: str) -> bool:
        return item_id in self._id_set

    def add(self, ids: list[str], embeddings: torch.Tensor) -> int:
        """Append rows whose id is new (re-indexing a folder adds only its new images); returns how many."""
        if embeddings.shape[1:] != (self.dim,):
            raise ValueError(f"embeddings of width {tuple(embeddings.shape[1:])} do not fit this index "
                             f"(dimension {self.dim}, model {self.model!r})")
        if len(ids) != len(embeddings):
            raise ValueError(f"{len(ids)} ids for {len(embeddings)} embeddings")
        keep = []
        for i, x in enumerate(ids):  # new ids only, the first of any repeated within `ids`
            if x not in self._id_set:
                self._id_set.add(x)
                keep.append(i)
        if keep:
            new = torch.nn.functional.normalize(embeddings[keep].float(), dim=1)
            self.ids += [ids[i] for i in keep]
            self.embeddings = torch.cat([self.embeddings, new])
            self.ann = None  # stale: rebuild with build_ann
        return len(keep)

    def search(self, queries: torch.Tensor, k: int = 10) -> tuple[torch.Tensor, list[list[str]]]:
        """Exact top-k by cosine similarity: (scores (Q, k), ids)."""
        queries = torch.nn.functional.normalize(queries.float().reshape(-1, self.dim), dim=1)
        k = min(k, len(self))
        if k == 0:
            return torch.empty(len(queries), 0), [[] for _ in range(len(queries))]
        if len(queries) == 1:
            # one query: numpy's GEMV + argpartition run ~2x faster here than torch's mv + topk
            # (benchmarks/chapter5_clip.py); a batch of queries is a GEMM, where torch is right
            sims = self.embeddings.numpy() @ queries[0].numpy()
            top = np.argpartition(sims, len(sims) - k)[len(sims) - k:]
            top = top[np.argsort(-sims[top], kind="stable")]
            return torch.from_numpy(sims[top].copy())[None], [[self.ids[j] for j in top.tolist()]]
        scores, idx = (queries @ self.embeddings.t()).topk(k, dim=1)
        return scores, [[self.ids[j] for j in row] for row in idx.tolist()]

    # -- approximate search (faiss) -----------------------------------------------------------------------
    def build_ann(self, kind: str = "ivf", nlist: int = 0, nprobe: int = 16, hnsw_m: int = 32) -> None:
        """faiss inner-product index: 'ivf' (IVF-Flat, nlist ~ 4 sqrt(N) lists, `nprobe` visited) or 'hnsw'."""
        import faiss

        x = np.ascontiguousarray(self.embeddings.numpy())
        if kind == "ivf":
            nlist = nlist or max(1, int(4 * np.sqrt(len(x))))
            quantizer = faiss.IndexFlatIP(self.dim)
            index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
            index.train(x)
            index.nprobe = nprobe
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(self.dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efSearch = 64
        else:
            raise ValueError(f"ann kind must be 'ivf' or 'hnsw', got {kind!r}")
        index.add(x)
        self.ann = index

    def search_ann(self, queries: torch.Tensor, k: int = 10) -> tuple[torch.Tensor, list[list[str]]]:
        if self.ann is None:
            raise RuntimeError("no approximate index: call build_ann() first (add() invalidates it)")
        q = torch.nn.functional.normalize(queries.float().reshape(-1, self.dim), dim=1).numpy()
        scores, idx = self.ann.search(np.ascontiguousarray(q), min(k, len(self)))
        return torch.from_numpy(scores), [[self.ids[j] for j in row if j >= 0] for row in idx.tolist()]

    def recall_vs_exact(self, queries: torch.Tensor, k: int = 10) -> float:
        """Mean fraction of the exact top-k that the approximate index returns."""
        _, exact = self.search(queries, k)
        _, approx = self.search_ann(queries, k)
        return float(np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(approx, exact)]))

    # -- disk -----------------------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write (or rewrite) the index files in `directory`; each file is replaced atomically, other files in
        the directory (labels.csv, logs) stay. Under the directory's writer lock: rows another writer saved
        since this copy last matched the disk are merged in first (no add is lost), and the temporary folders
        of a save that was killed half-way are removed (no other save can be running)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with writer_lock(directory):
            stamp = _stamp(directory)
            if stamp is not None and stamp != self._disk_stamp:
                disk = EmbeddingIndex.load(directory)
                if disk.dim == self.dim:
                    new = [i for i, x in enumerate(disk.ids) if x not in self._id_set]
                    if new:
                        self.add([disk.ids[i] for i in new], disk.embeddings[new])
            for stale in directory.glob(".index-*"):
                shutil.rmtree(stale, ignore_errors=True)
            emb = self.embeddings.to(torch.float16).numpy()
            table = pa.table({"id": pa.array(self.ids, pa.string()),
                              "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), self.dim)})
            meta = json.dumps({"model": self.model, "pretrained": self.pretrained, "dim": self.dim,
                               "count": len(self)}, indent=1)
            with tempfile.TemporaryDirectory(prefix=".index-", dir=directory) as tmp:
                pq.write_table(table, Path(tmp) / "embeddings.parquet")
                (Path(tmp) / "index.json").write_text(meta)
                os.replace(Path(tmp) / "embeddings.parquet", directory / "embeddings.parquet")
                os.replace(Path(tmp) / "index.json", directory / "index.json")  # last: it marks a complete index
            self._disk_stamp = _stamp(directory)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "EmbeddingIndex":
        directory = Path(directory)
        if not (directory / "index.json").exists():
            raise FileNotFoundError(f"{directory} is not an index (no index.json); build one with jobs/index.py")
        stamp = _stamp(directory)  # before reading: a save landing in between makes the next save merge
        meta = json.loads((directory / "index.json").read_text())
        index = cls(meta["dim"], meta.get("model", ""), meta.get("pretrained", ""))
        table = pq.read_table(directory / "embeddings.parquet")
        flat = table.column("embedding").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        index.add(table.column("id").to_pylist(), torch.from_numpy(flat.astype(np.float32)).reshape(-1, meta["dim"]))
        index._disk_stamp = stamp
        return index
