"""The Runtime of a Ray Train worker: Ray Data (or local parquet) batches, DDP, report + checkpoints via Ray."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterator

import ray.train
import ray.train.torch
from ray.experimental.tqdm_ray import tqdm as tqdm_ray
from torch import nn

from genlab.core.distributed import gather_objects
from genlab.core.rundir import MetricsWriter, mark_event
from genlab.core.runtime import Batch, autocast_for, shuffled_batches
from genlab.data.shards import decode_batch, read_shards, shard_shape


class RayTrainRuntime:
    """Lives inside `train_loop_per_worker`. `data_backend='ray'` streams this worker's shard of the Ray
    Dataset (`ray.train.get_dataset_shard`); 'local' reads the parquet shards into memory and shards by rank."""

    def __init__(self, run_dir: str | Path, *, data_backend: str, shard_dirs: dict[str, str],
                 sizes: dict[str, int], seed: int, shuffle_buffer: int = 10_000, stop_after_s: float = 0,
                 precision: str = "auto"):
        ctx = ray.train.get_context()
        self.rank = ctx.get_world_rank()
        self.world_size = ctx.get_world_size()
        self.device = ray.train.torch.get_device()
        self.run_dir = Path(run_dir)
        self.data_backend = data_backend
        self.shard_dirs = shard_dirs
        self.sizes = sizes
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer
        self.stop_after_s = stop_after_s
        self.precision = precision
        self._local: dict[str, Batch] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._tmp: list[Path] = []
        self.metrics = MetricsWriter(self.run_dir / "metrics.jsonl") if self.is_main else None
        # where the ranks run (collective: every rank is here once per start of the worker group)
        self._where = gather_objects((ray.get_runtime_context().get_node_id(), os.getpid()))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def prepare_model(self, model: nn.Module) -> nn.Module:
        return ray.train.torch.prepare_model(model)  # moves to device; DDP (gloo on CPU, nccl on GPU)

    def num_examples(self, split: str) -> int:
        return self.sizes[split]

    def batches(self, split: str, batch_size: int, epoch: int) -> Iterator[Batch]:
        """Endless within an epoch: the loop takes a fixed number of steps, identical on every rank."""
        pass_ = 0
        while True:
            seed = self.seed * 100_003 + epoch * 1_000 + pass_
            for x, y in self._one_pass(split, batch_size, seed):
                yield x.to(self.device), y.to(self.device)
            pass_ += 1

    def _one_pass(self, split: str, batch_size: int, seed: int) -> Iterator[Batch]:
        if self.data_backend == "ray":
            shard = ray.train.get_dataset_shard(split)
            for batch in shard.iter_batches(batch_size=batch_size, batch_format="numpy", drop_last=True,
                                            local_shuffle_buffer_size=self.shuffle_buffer,
                                            local_shuffle_seed=seed, prefetch_batches=4):
                yield decode_batch(batch, self._shape(split))
        else:
            if split not in self._local:
                self._local[split] = read_shards(self.shard_dirs[split])
            images, labels = self._local[split]
            yield from shuffled_batches(images, labels, batch_size, seed, self.rank, self.world_size)

    def _shape(self, split: str) -> tuple[int, ...]:
        if split not in self._shapes:
            self._shapes[split] = shard_shape(self.shard_dirs[split])
        return self._shapes[split]

    def autocast(self):
        return autocast_for(self.device, self.precision)

    def progress(self, *, total: int, initial: int = 0, desc: str = "", disable: bool = False, **_):
        """Ray's tqdm: the bar is drawn by the driver (a worker's own tqdm would print a line per refresh)."""
        if disable:
            return _NoBar()
        bar = _RayBar(total=total, desc=desc, unit="step")
        bar.update(initial)
        return bar

    def checkpoint_dir(self, step: int) -> Path:
        path = Path(tempfile.mkdtemp(prefix=f"genlab-ckpt-{step}-")) / "checkpoint"
        self._tmp.append(path.parent)
        return path

    def report(self, metrics: dict, checkpoint: Path | None = None) -> None:
        if self.metrics is not None:
            self.metrics.write(metrics)
        ckpt = ray.train.Checkpoint.from_directory(str(checkpoint)) if checkpoint is not None else None
        ray.train.report(metrics, checkpoint=ckpt)  # every rank reports; only rank 0 passes a checkpoint
        for tmp in self._tmp:  # Ray has copied it into the run's storage
            shutil.rmtree(tmp, ignore_errors=True)
        self._tmp.clear()

    def begin(self, step: int) -> None:
        """Forget metrics reported after `step` (they are redone) and add a line to the run's
        worker_groups.jsonl: one per start of the worker group (a restart after a lost worker is a new line),
        with the step it starts from and the node and process of every rank."""
        if self.metrics is None:
            return
        self.metrics.rewind(step)
        nodes = [node for node, _ in self._where]
        with open(self.run_dir / "worker_groups.jsonl", "a") as f:
            f.write(json.dumps({"started_at": time.time(), "start_step": step, "world_size": self.world_size,
                                "nodes": len(set(nodes)), "node_of_rank": nodes,
                                "pid_of_rank": [pid for _, pid in self._where]}) + "\n")

    def mark(self, event: str, step: int) -> None:
        if self.is_main:
            mark_event(self.run_dir, event, step)

    def latest_checkpoint(self) -> Path | None:
        ckpt = ray.train.get_checkpoint()
        if ckpt is None:
            return None
        path = Path(tempfile.mkdtemp(prefix="genlab-resume-"))
        self._tmp.append(path)
        return Path(ckpt.to_directory(str(path)))


class _RayBar(tqdm_ray):
    """Ray's tqdm with tqdm's `set_postfix` (shown after the description)."""

    def __init__(self, *, desc: str, **kwargs):
        super().__init__(desc=desc, **kwargs)
        self._base = desc

    def set_postfix(self, ordered_dict=None, refresh: bool = True, **kwargs) -> None:
        items = {**(ordered_dict or {}), **kwargs}
        self._desc = f"{self._base} " + ", ".join(f"{k}={v}" for k, v in items.items())


class _NoBar:
    """The progress bar of ranks that show none."""

    def update(self, n: int = 1) -> None: ...
    def set_postfix(self, *args, **kwargs) -> None: ...
    def close(self) -> None: ...
