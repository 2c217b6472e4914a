"""The small interface a training loop runs against, and the local (no Ray) implementation.

The harness (`genlab.core.harness.fit`) and the families call only: `rank`, `world_size`, `device`, `is_main`,
`run_dir`, `stop_after_s`, `prepare_model`, `batches`, `autocast`, `progress`, `checkpoint_dir`, `report`,
`latest_checkpoint`, `begin`. `LocalRuntime` serves tests and notebooks; the
Ray Train runtime in `genlab.distributed.train_runtime` maps the same calls onto Ray Train and Ray Data.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Iterator, Protocol

import torch
from torch import nn
from tqdm.auto import tqdm

from genlab.core.checkpoint import find_latest_checkpoint, step_checkpoints
from genlab.core.rundir import MetricsWriter, mark_event

Batch = tuple[torch.Tensor, torch.Tensor]  # (images uint8 (B, 28, 28), labels int64 (B,))


class Runtime(Protocol):
    rank: int
    world_size: int
    device: torch.device
    run_dir: Path
    stop_after_s: float  # end the run (checkpointed) after the first epoch that finishes past this; 0 = never

    @property
    def is_main(self) -> bool: ...
    def prepare_model(self, model: nn.Module) -> nn.Module: ...
    def num_examples(self, split: str) -> int: ...
    def batches(self, split: str, batch_size: int, epoch: int) -> Iterator[Batch]: ...
    def autocast(self) -> contextlib.AbstractContextManager: ...
    def progress(self, **tqdm_kwargs): ...
    def checkpoint_dir(self, step: int) -> Path: ...
    def report(self, metrics: dict, checkpoint: Path | None = None) -> None: ...
    def latest_checkpoint(self) -> Path | None: ...
    def begin(self, step: int) -> None: ...  # training (re)starts at `step`: forget metrics reported after it
    def mark(self, event: str, step: int) -> None: ...  # rank 0 notes when a point of the run was reached


PRECISIONS = ("auto", "fp32", "bf16")


def autocast_for(device: torch.device, precision: str = "auto") -> contextlib.AbstractContextManager:
    """bf16 mixed precision on CUDA; on CPU fp32 unless asked for bf16. 'auto' keeps fp32 on every CPU: bf16
    autocast was measured only where it is emulated (AVX2, no AMX: slower, benchmarks/cpu_precision.py); on an AMX
    CPU pass 'bf16' and check the loss curve against fp32 at a fixed budget."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def shuffled_batches(images: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int,
                     rank: int = 0, world_size: int = 1) -> Iterator[Batch]:
    """Shuffle with a generator seeded per epoch (so resume replays the same order), shard by rank."""
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    order = order[rank::world_size]
    for start in range(0, len(order) - batch_size + 1, batch_size):  # drop_last keeps steps/epoch fixed
        idx = order[start:start + batch_size]
        yield images[idx], labels[idx]


class LocalRuntime:
    """One process, in-memory data, checkpoints under `run_dir/checkpoints/step_<n>` (last `keep` kept)."""

    rank = 0
    world_size = 1
    is_main = True

    def __init__(self, run_dir: str | Path, datasets: dict[str, Batch], seed: int = 0,
                 device: str = "cpu", keep: int = 2, resume_from: str | Path | None = None,
                 stop_after_s: float = 0, precision: str = "auto"):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.datasets = datasets
        self.seed = seed
        self.device = torch.device(device)
        self.keep = keep
        self.resume_from = Path(resume_from) if resume_from else None
        self.stop_after_s = stop_after_s
        self.precision = precision
        self.metrics = MetricsWriter(self.run_dir / "metrics.jsonl")

    def prepare_model(self, model: nn.Module) -> nn.Module:
        return model.to(self.device)

    def num_examples(self, split: str) -> int:
        return len(self.datasets[split][0])

    def batches(self, split: str, batch_size: int, epoch: int) -> Iterator[Batch]:
        if split not in self.datasets:
            raise KeyError(f"no dataset split {split!r}; have {sorted(self.datasets)}")
        images, labels = self.datasets[split]
        for x, y in shuffled_batches(images, labels, batch_size, seed=self.seed * 100_003 + epoch):
            yield x.to(self.device), y.to(self.device)

    def autocast(self):
        return autocast_for(self.device, self.precision)

    def progress(self, **tqdm_kwargs):
        return tqdm(**tqdm_kwargs)

    def checkpoint_dir(self, step: int) -> Path:
        return self.run_dir / "checkpoints" / f"step_{step:08d}"

    def report(self, metrics: dict, checkpoint: Path | None = None) -> None:
        self.metrics.write(metrics)
        if checkpoint is not None:
            self._prune()

    def _prune(self) -> None:
        for old in step_checkpoints(self.run_dir / "checkpoints")[:-self.keep]:
            shutil.rmtree(old, ignore_errors=True)

    def begin(self, step: int) -> None:
        self.metrics.rewind(step)

    def mark(self, event: str, step: int) -> None:
        mark_event(self.run_dir, event, step)

    def latest_checkpoint(self) -> Path | None:
        """The newest checkpoint of `resume_from` (a run dir or a checkpoint dir) or of this run dir."""
        for root in filter(None, [self.resume_from, self.run_dir]):
            if (found := find_latest_checkpoint(root)) is not None:
                return found
        return None

