"""Seeds that make CPU runs repeatable, and RNG state capture for exact resume."""

from __future__ import annotations

import contextlib
import random

import numpy as np
import torch


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a torch.Generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def rng_state() -> dict:
    """Everything needed to continue a random stream after a resume."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {  # only tensors and plain Python values, so torch.load(weights_only=True) can read it back
        "python": random.getstate(),
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def rng_untouched():
    """Run a side computation (e.g. a metric that builds a model: random init) without advancing the global
    random streams: a run resumed from a checkpoint taken before it must draw what the uninterrupted run draws."""
    saved = rng_state()
    try:
        yield
    finally:
        set_rng_state(saved)
