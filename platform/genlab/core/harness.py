"""The one training harness: `fit(rt, state, step_fn, ...)` drives every family's loop.

A family builds its `TrainState` and writes its `# ALGO LOGIC` step (`step_fn(batch) -> {name: value}`) and its
evaluation (`eval_fn() -> {"eval/...": ...}` each epoch, `final_fn()` once at the end, rank 0 only). `fit` owns
the rest: resume from the runtime's latest checkpoint (forgetting metrics reported after it), rank 0's weights on
every rank, epochs and steps, the data-wait timing, perf metrics, one progress bar, windowed metrics every
`log_every` steps, a checkpoint per epoch (with every rank's RNG), a time budget, replica health checks and the
collective final report.
An "epoch" is `steps_per_epoch` steps: a pass over the data, or (episodic families) one validation period.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Callable

import torch

from genlab.core.config import to_dict
from genlab.core.distributed import (broadcast_buffers_, broadcast_object, gather_objects, module_digest,
                                     tensors_digest)
from genlab.core.runtime import Runtime
from genlab.core.train_state import TrainState

log = logging.getLogger(__name__)

StepFn = Callable[[object], dict]


def fit(rt: Runtime, state: TrainState, step_fn: StepFn, *, family: str, config, total_steps: int,
        steps_per_epoch: int, batch_size: int = 0, split: str = "train", eval_fn: Callable[[], dict] | None = None,
        final_fn: Callable[[], dict] | None = None, log_every: int = 0, items: str = "samples",
        items_per_step: int = 0, progress: bool = True, desc: str = "train") -> dict:
    """Train until `total_steps`; returns the last epoch's metrics merged with the final evaluation.

    `batch_size` > 0: each step gets a batch of `batch_size // world_size` from `rt.batches(split, ...)`;
    0: the step draws its own data (episodes) and gets None. Throughput is reported as `perf/<items>_per_s`,
    counting `items_per_step` per step across all ranks (default: the global batch)."""
    ckpt = rt.latest_checkpoint()
    state.prepare(rt, ckpt, seed=getattr(config, "seed", 0))
    if ckpt is not None:
        log.info("resumed from %s at step %d (epoch %d)", ckpt, state.step, state.epoch)
    rt.begin(state.step)  # what was reported after that checkpoint is redone, and reported again
    first_step = state.step + 1
    per_worker = max(1, batch_size // rt.world_size) if batch_size else 0
    items_per_step = items_per_step or per_worker * rt.world_size
    epochs = math.ceil(total_steps / steps_per_epoch)
    bar = rt.progress(total=total_steps, initial=state.step, desc=desc, disable=not (progress and rt.is_main))
    started = time.perf_counter()
    metrics: dict = {}
    stopped = False
    window, in_window = {}, 0  # log_every windows run across epoch ends
    while state.epoch < epochs:
        n_steps = min(steps_per_epoch, total_steps - state.step)
        state.train_mode()
        sums, wait, t0 = {}, 0.0, time.perf_counter()
        batches = iter(rt.batches(split, per_worker, state.epoch)) if per_worker else None
        for _ in range(n_steps):
            tw = time.perf_counter()
            batch = next(batches) if batches is not None else None
            wait += time.perf_counter() - tw
            values = {k: float(v) for k, v in step_fn(batch).items()}  # float(): the step has been applied
            state.step += 1
            if state.step == first_step:
                rt.mark("first_step_end", state.step)
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v
                window[k] = window.get(k, 0.0) + v
            in_window += 1
            bar.update()
            if log_every and state.step % log_every == 0:
                means = {k: v / in_window for k, v in window.items()}
                bar.set_postfix({k: f"{v:.4g}" for k, v in list(means.items())[:3]}, refresh=False)
                rt.report({"step": state.step, **{f"train/{k}": v for k, v in means.items()}})  # every rank
                window, in_window = {}, 0
            elif not log_every and "loss" in values:
                bar.set_postfix(loss=f"{values['loss']:.4f}", refresh=False)
        elapsed = time.perf_counter() - t0
        state.epoch += 1
        means = {} if log_every else {f"train/{k}": v / n_steps for k, v in sums.items()}  # windows have them
        metrics = {"step": state.step, "epoch": state.epoch, **means,
                   "perf/epoch_s": elapsed, f"perf/{items}_per_s": n_steps * items_per_step / elapsed,
                   "perf/data_wait_frac": wait / elapsed}
        if rt.device.type == "cuda":
            metrics["perf/gpu_peak_mem_gb"] = torch.cuda.max_memory_allocated(rt.device) / 2**30
        if state.schedulers:
            metrics["train/lr"] = next(iter(state.schedulers.values())).get_last_lr()[0]
        if rt.world_size > 1:
            # DDP hands rank 0's BatchNorm statistics to every rank at the start of each forward, so after the
            # epoch's last forward the other ranks hold their own; make every replica rank 0's (what the
            # checkpoint saves) before comparing them. Rank 0's training is unchanged by this.
            broadcast_buffers_(state.model)
        metrics |= _replica_health(state, rt)
        if rt.is_main and eval_fn is not None:
            metrics |= eval_fn()
        rank_states = gather_objects(state.rank_state())  # collective: every rank's RNG goes to rank 0
        checkpoint = None
        if rt.is_main:
            checkpoint = state.save(rt.checkpoint_dir(state.step), family=family, config=to_dict(config),
                                    rank_states=rank_states)
        rt.report(metrics, checkpoint=checkpoint)
        budget = rt.stop_after_s
        if budget and state.epoch < epochs and broadcast_object(time.perf_counter() - started > budget):
            log.info("time budget of %.0f s spent at step %d: checkpointed; resume to continue", budget, state.step)
            stopped = True
            break
    bar.close()
    rt.mark("last_step_end", state.step)
    final = final_fn() if rt.is_main and final_fn is not None and not stopped else {}
    if final or rt.world_size > 1:  # Ray Train's report is collective: every rank reports, rank 0's numbers
        rt.report({"step": state.step, **final})
        metrics |= final
    return metrics


def _replica_health(state: TrainState, rt: Runtime) -> dict:
    """On N ranks: are the replicas bit-identical, and does every rank draw from its own RNG stream?"""
    if rt.world_size == 1:
        return {}
    rng = state.rank_state()
    digests = gather_objects((module_digest(state.model), tensors_digest([rng["torch"], *rng["generators"].values()])))
    in_sync = len({d for d, _ in digests}) == 1
    streams = len({r for _, r in digests})
    if not in_sync:
        log.warning("replicas differ across ranks at step %d", state.step)
    return {"dist/replicas_in_sync": float(in_sync), "dist/rng_streams": streams}
