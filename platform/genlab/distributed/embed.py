"""Embed an image collection with Ray Data: reading and decoding in Ray tasks, the image tower in an actor pool
(`map_batches` with a callable class), so decoding overlaps the model and the pool spreads over the cluster."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from genlab.distributed.env import init_ray
from genlab.multimodal.embed import Embedder, check_parquet_source, count_rows


def embed_with_ray(source: str | Path, model: str, pretrained: str | None = None, batch_size: int = 512,
                   actors: int = 1, cpus_per_actor: float = 1.0, threads_per_actor: int = 0,
                   block_mb: float = 12, read_cpus: float = 0.25, actor_resources: dict | None = None,
                   progress: bool = True, timings: dict | None = None,
                   embedder: type = Embedder) -> tuple[list[str], torch.Tensor]:
    """(ids, L2-normalised embeddings) of a parquet directory (`id`, raw `image`) or an image folder.
    `timings` (if given) gets `first_batch_s`, `first_batch_rows` and `first_batch_at` (epoch s): the pipeline's
    start-up (actors start, import torch and open_clip, build the model) before the first embeddings arrive.
    Each actor holds a CPU share of `cpus_per_actor` (fractional: the read tasks need CPUs too) and runs torch
    with `threads_per_actor` threads (0: all of the node's).
    Blocks of at most `block_mb` MiB (~4k caption canvases): Ray 2.60's parquet reader groups 100k rows into 3
    blocks (it ignores `override_num_blocks`), and an actor hands a block back only when it has embedded all of it
    (measured: the first embeddings after 25 of 29 s). Read tasks take `read_cpus` each, beside the actors.
    `actor_resources`: custom resources each actor needs (e.g. {"genlab_worker": 1}, one per node: the pool
    spreads over the nodes).
    `embedder`: the callable class the pool runs (constructed with model, pretrained, threads); benchmarks swap
    in one that embeds nothing to measure Ray Data's own start-up."""
    ray = init_ray()
    source = Path(source).resolve()
    rows = count_rows(source)
    free = ray.cluster_resources().get("CPU", 0) - actors * cpus_per_actor
    if free < 1:  # Ray Data lists the files in a task of one whole CPU, and the actors would hold them all
        raise ValueError(f"{actors} actor(s) x {cpus_per_actor} CPU leave {free:g} of the cluster's CPUs: Ray Data "
                         "needs 1 free for its file-listing task (else the pipeline waits forever); lower "
                         "cpus_per_actor (jobs/index.py --cpus-per-actor; torch threads are set apart)")
    if any(source.glob("*.parquet")):
        check_parquet_source(source)
        ds = ray.data.read_parquet(str(source), columns=["id", "image"], num_cpus=read_cpus)
    else:
        from genlab.multimodal.models import tower_image_size

        size = tower_image_size(model)  # from the config: the driver builds no model
        if not rows:  # counted above: the folder is listed once here
            raise FileNotFoundError(f"{source}: no images (png, jpg, jpeg, webp, bmp) in it")
        ds = ray.data.read_images(str(source), include_paths=True, size=(size, size), mode="RGB", num_cpus=read_cpus)
        ds = ds.map_batches(_path_ids, fn_kwargs={"root": str(source)}, batch_format="numpy")
    ds.context.target_max_block_size = int(block_mb * 2**20)  # this dataset's copy of the context
    threads = threads_per_actor or max(1, int(ray.cluster_resources().get("CPU", 1)))
    ds = ds.map_batches(embedder, fn_constructor_kwargs={"model": model, "pretrained": pretrained,
                                                         "threads": threads},
                        batch_size=batch_size, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=actors),
                        num_cpus=cpus_per_actor, resources=actor_resources or None)
    ids, embs = [], []
    t0 = time.perf_counter()
    with tqdm(total=rows, desc="embed (Ray Data)", unit="img", disable=not progress) as bar:
        for batch in ds.iter_batches(batch_size=batch_size, batch_format="numpy", prefetch_batches=2):
            if timings is not None and not ids:
                timings |= {"first_batch_s": time.perf_counter() - t0, "first_batch_rows": len(batch["id"]),
                            "first_batch_at": time.time()}
            ids += batch["id"].tolist()
            embs.append(torch.from_numpy(np.array(batch["embedding"], np.float32)))
            bar.update(len(batch["id"]))
    return ids, torch.cat(embs) if embs else torch.empty(0)


def _path_ids(batch: dict, root: str) -> dict:
    return {"id": np.array([str(Path(p).relative_to(root)) for p in batch["path"]]), "image": batch["image"]}
