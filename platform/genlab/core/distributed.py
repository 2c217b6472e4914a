"""What a data-parallel run needs from torch.distributed, usable (as no-ops) in a single process.

Ray Train sets up the process group; these helpers only use it. Pure torch: no Ray here.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def broadcast_module_(module: nn.Module, src: int = 0) -> None:
    """Copy rank `src`'s parameters and buffers into every rank's replica (in place). DDP does this once when
    it wraps a model; a family that syncs gradients itself (MAML's functional forward) needs it explicitly,
    and an EMA copy or a resumed state must agree too."""
    if world_size() == 1:
        return
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            dist.broadcast(t.data, src)


def broadcast_buffers_(module: nn.Module, src: int = 0) -> None:
    """Rank `src`'s buffers (BatchNorm running statistics) everywhere, as DDP's broadcast_buffers does."""
    if world_size() == 1:
        return
    with torch.no_grad():
        for t in module.buffers():
            dist.broadcast(t.data, src)


def all_reduce_grads_(module: nn.Module) -> None:
    """Mean of every gradient across ranks (for forwards that bypass DDP's hooks)."""
    n = world_size()
    if n == 1:
        return
    for p in module.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= n


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order (collective; a one-element list in a single process)."""
    n = world_size()
    if n == 1:
        return [obj]
    out: list[Any] = [None] * n
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank `src`'s `obj` on every rank (collective), e.g. a decision only rank 0 may take."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src)
    return box[0]


def module_digest(module: nn.Module) -> str:
    """A hash of every parameter and buffer: equal digests mean bit-identical replicas."""
    return tensors_digest(list(module.state_dict().values()))


def tensors_digest(tensors: list[torch.Tensor]) -> str:
    """A hash of tensors' bytes (e.g. RNG states: equal digests mean the same random stream)."""
    h = hashlib.sha1()
    for t in tensors:
        h.update(t.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
