"""The search app's model and index deployments: a text encoder and an image encoder (each batching with
`@serve.batch`) and the index (one replica, loaded from disk, reloaded when `user_config` changes, and embedding
text queries itself so that a text search is one handle hop). The FastAPI ingress that composes them, and the app
built from deploy-time arguments, are in genlab.serve.search_app."""

import asyncio
import logging
from pathlib import Path

import numpy as np
from ray import serve

from genlab.serve.media import thumbnail

log = logging.getLogger("ray.serve")
REPO = Path(__file__).resolve().parents[3]  # platform/genlab/serve -> the checkout (relative paths start here)


def repo_path(path: str | Path) -> Path:
    """Relative paths in a deploy config mean the checkout, wherever Serve starts the replica."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else REPO / path


def _shown(path: Path) -> str:
    """A server path as clients may see it: relative to the checkout, else its last two parts (no absolute path
    of the server leaves it)."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(Path(*path.parts[-2:]))


def _load_clip(model: str, weights: str):
    import torch

    from genlab.multimodal.models import create_clip

    torch.set_num_threads(1)  # several replicas share the cores; one thread each avoids oversubscription
    return create_clip(model, weights or None)


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=64)
class TextEncoder:
    def __init__(self, model: str, weights: str, batching: bool = True):
        self.model, _, self.tokenizer = _load_clip(model, weights)
        self.batching = batching

    def _encode(self, texts: list[str]) -> np.ndarray:
        from genlab.multimodal.models import encode_texts

        return encode_texts(self.model, self.tokenizer, texts).numpy()

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.0)
    async def _batched(self, texts: list[str]) -> list[np.ndarray]:
        return list(self._encode(texts))

    async def encode(self, text: str) -> np.ndarray:
        return await self._batched(text) if self.batching else self._encode([text])[0]


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=32)
class ImageEncoder:
    def __init__(self, model: str, weights: str, batching: bool = True):
        self.model, _, _ = _load_clip(model, weights)
        self.batching = batching

    def _encode(self, images: np.ndarray) -> np.ndarray:
        import torch

        from genlab.multimodal.models import encode_images

        return encode_images(self.model, torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)).numpy()

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def _batched(self, images: list[np.ndarray]) -> list[np.ndarray]:
        return list(self._encode(np.stack(images)))

    async def encode(self, image: np.ndarray) -> np.ndarray:
        """One uint8 (H, W, 3) image."""
        return await self._batched(image) if self.batching else self._encode(image[None])[0]

    async def encode_many(self, images: np.ndarray) -> np.ndarray:
        """A stack (B, H, W, 3), e.g. a folder being indexed: already a batch."""
        return self._encode(images)


# a dead index replica is noticed within ~2 s (Serve's default health check: every 10 s)
# The index replica's process: exact search streams the whole index from memory (51 MB at 100k x 128), which two
# BLAS threads do in ~1.7 ms where one takes ~3 ms; Ray would pin a fractional-CPU replica to one thread
# (OMP_NUM_THREADS=1, which OpenBLAS obeys). Idle OpenBLAS threads spin for ~0.1 s by default, stealing the core
# the proxy and the ingress need next: a short spin (2^4 cycles) makes the second thread pay. One client, text
# search over 100k: p50 13.3 ms against 15.3 with one thread or with two spinning ones (benchmarks/NOTES.md).
# Read when the process starts, so a Serve config that sets IndexStore's ray_actor_options must repeat it.
SEARCH_ENV = {"OPENBLAS_NUM_THREADS": "2", "OPENBLAS_THREAD_TIMEOUT": "4"}


@serve.deployment(ray_actor_options={"num_cpus": 0.25, "runtime_env": {"env_vars": SEARCH_ENV}},
                  max_ongoing_requests=64, health_check_period_s=2)
class IndexStore:
    """The one copy of the index, loaded from `user_config["index_dir"]`. Async methods run one at a time on the
    replica's event loop, so a search never sees an index half-way through an add."""

    def __init__(self, model: str, weights: str, batching: bool = True):
        self.model, self.weights, self.batching = model, weights, batching
        self.clip, _, self.tokenizer = _load_clip(model, weights)  # the text tower embeds search queries here
        self.caption_sources: dict = {}
        self.dir, self.index = None, None  # set by reconfigure, which Serve calls right after __init__

    def reconfigure(self, user_config: dict) -> None:
        """`user_config: {index_dir: ...}` (re)loads that index; changing it reloads in place, no restart."""
        import open_clip

        from genlab.multimodal.index import EmbeddingIndex
        from genlab.multimodal.models import register_configs

        if not user_config.get("index_dir"):
            raise ValueError("IndexStore needs user_config {index_dir: <directory>}")
        directory = repo_path(user_config["index_dir"])
        if (directory / "index.json").exists():
            index = EmbeddingIndex.load(directory)
            if index.model != self.model:
                raise ValueError(f"{directory} was built with {index.model!r} but this app serves {self.model!r}: "
                                 "deploy with the index's model (and its weights) or another index_dir")
        else:
            register_configs()
            index = EmbeddingIndex(open_clip.get_model_config(self.model)["embed_dim"], self.model, self.weights)
        self.dir, self.index = directory, index
        log.info("index %s: %d images", directory, len(index))

    def _top_k(self, queries, ks: list[int]) -> list[tuple[list[str], list[float]]]:
        """One exact search for a batch of query embeddings (Q, D), each cut to its own k."""
        scores, ids = self.index.search(queries, max(ks))
        return [(row_ids[:k], row_scores[:k]) for k, row_ids, row_scores in zip(ks, ids, scores.tolist())]

    def _text_top_k(self, requests: list[tuple[str, int]]) -> list[tuple[list[str], list[float]]]:
        from genlab.multimodal.models import encode_texts

        return self._top_k(encode_texts(self.clip, self.tokenizer, [t for t, _ in requests]), [k for _, k in requests])

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.0)
    async def _search(self, requests: list[tuple[np.ndarray, int]]) -> list[tuple[list[str], list[float]]]:
        import torch

        return self._top_k(torch.from_numpy(np.stack([q for q, _ in requests])), [k for _, k in requests])

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.0)
    async def _search_texts(self, requests: list[tuple[str, int]]) -> list[tuple[list[str], list[float]]]:
        return self._text_top_k(requests)  # one forward pass of the text tower and one GEMM for the whole batch

    async def search(self, query: np.ndarray, k: int) -> tuple[list[str], list[float]]:
        """Top-k for an embedding (an uploaded image's)."""
        return await self._search((query, k))

    async def search_text(self, text: str, k: int) -> tuple[list[str], list[float]]:
        """Top-k for a text query, embedded here (batched with concurrent queries unless batching is off)."""
        return await self._search_texts((text, k)) if self.batching else self._text_top_k([(text, k)])[0]

    async def missing(self, ids: list[str]) -> list[bool]:
        """Which of `ids` the index does not hold yet: re-indexing a folder decodes and embeds only new files."""
        return [i not in self.index for i in ids]

    async def add(self, ids: list[str], embeddings: np.ndarray, save: bool = True) -> dict:
        import torch

        added = self.index.add(ids, torch.from_numpy(embeddings))
        if added and save:
            self.index.save(self.dir)  # before answering: an acknowledged add survives a restart
        return {"added": added, "count": len(self.index)}

    async def save(self) -> dict:
        """Write the index once after a folder's chunks were added with save=False (one rewrite per folder, not
        one per chunk); merges what another writer (jobs/index.py) saved meanwhile."""
        self.index.save(self.dir)
        return {"count": len(self.index)}

    async def thumbnail(self, item_id: str) -> bytes | None:
        if item_id not in self.index:
            return None
        try:  # decoding a file takes milliseconds to seconds: off the loop, searches go on meanwhile
            return await asyncio.to_thread(thumbnail, item_id, self.caption_sources)
        except Exception as err:  # gone since it was indexed, no longer an image we read, a bomb swapped in: 404
            log.info("thumbnail %s: %s", item_id[-80:], type(err).__name__)
            return None

    async def stats(self) -> dict:
        return {"count": len(self.index), "dim": self.index.dim, "model": self.index.model,
                "weights": Path(self.weights).name if self.weights else "", "index_dir": _shown(self.dir),
                "replica": serve.get_replica_context().replica_id.unique_id}
