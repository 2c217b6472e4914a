"""Checkpoint = a directory: config.json, model.safetensors (+ ema.safetensors), train_state.pt.

Writes are atomic (temp dir, then rename). Loading never unpickles arbitrary objects: weights come from
safetensors and train_state.pt is read with `weights_only=True`.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from genlab.core.config import load_json, save_json

FORMAT_VERSION = 1
_BUILDERS: dict[str, Callable[[dict], nn.Module]] = {}


def register_family(family: str, build_model: Callable[[dict], nn.Module]) -> None:
    """A family registers how to rebuild its model from a checkpoint's config.json."""
    _BUILDERS[family] = build_model


def unwrap(model: nn.Module) -> nn.Module:
    """Strip DistributedDataParallel (and similar `.module` wrappers)."""
    return model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model


def _git_sha() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def save_checkpoint(path: str | Path, *, family: str, config: dict, model: nn.Module,
                    train_state: dict | None = None, ema: nn.Module | dict | None = None) -> Path:
    """Write a checkpoint directory atomically; returns its path. `ema`: a module or a state dict."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        save_json({"format_version": FORMAT_VERSION, "family": family, "git_sha": _git_sha(),
                   "config": config}, tmp / "config.json")
        save_file(_state(unwrap(model).state_dict()), tmp / "model.safetensors")
        if ema is not None:
            save_file(_state(ema if isinstance(ema, dict) else unwrap(ema).state_dict()), tmp / "ema.safetensors")
        if train_state is not None:
            torch.save(train_state, tmp / "train_state.pt")
        if path.exists():
            old = path.with_name(path.name + ".old")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in state.items()}


def read_checkpoint_config(path: str | Path) -> dict:
    meta = load_json(Path(path) / "config.json")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format {meta.get('format_version')} is not {FORMAT_VERSION}")
    return meta


def load_model(path: str | Path, *, ema: bool = False, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model a checkpoint describes and load its weights (EMA weights with ema=True)."""
    path = Path(path)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path} is not a genlab checkpoint (no config.json)")
    meta = read_checkpoint_config(path)
    family = meta["family"]
    if family not in _BUILDERS:
        importlib.import_module(f"genlab.{family}")  # families register themselves on import
    model = _BUILDERS[family](meta["config"])
    model.load_state_dict(load_file(path / ("ema.safetensors" if ema else "model.safetensors")))
    return model.to(device).eval()


def load_weights(model: nn.Module, path: str | Path, *, ema: bool = False) -> None:
    unwrap(model).load_state_dict(load_file(Path(path) / ("ema.safetensors" if ema else "model.safetensors")))


def load_train_state(path: str | Path) -> dict:
    # map_location: a checkpoint written on a GPU resumes on a CPU-only machine (the optimisers then move their
    # state to wherever the parameters are)
    return torch.load(Path(path) / "train_state.pt", weights_only=True, map_location="cpu")


def find_latest_checkpoint(run_dir: str | Path) -> Path | None:
    """Newest checkpoint of a run: `checkpoints/step_<n>` (local runtime) or `checkpoint_<time>` (Ray Train)."""
    run_dir = Path(run_dir)
    if (run_dir / "config.json").exists() and (run_dir / "model.safetensors").exists():
        return run_dir  # already a checkpoint directory
    local = [p for p in step_checkpoints(run_dir / "checkpoints") if (p / "model.safetensors").exists()]
    if local:
        return local[-1]
    ray_ckpts = [p for p in run_dir.glob("checkpoint_*") if (p / "model.safetensors").exists()]
    return max(ray_ckpts, key=lambda p: p.name) if ray_ckpts else None


def newest_run(root: str | Path, pattern: str) -> Path | None:
    """The most recently written run directory under `root` matching `pattern` that has a checkpoint."""
    runs = [p for p in Path(root).glob(pattern) if p.is_dir() and find_latest_checkpoint(p)]
    return max(runs, key=lambda p: p.stat().st_mtime) if runs else None


def step_checkpoints(root: str | Path) -> list[Path]:
    """The `step_<n>` checkpoint directories under root, oldest first."""
    root = Path(root)
    if not root.exists():
        return []
    dirs = [p for p in root.iterdir() if p.is_dir() and re.fullmatch(r"step_\d+", p.name)]
    return sorted(dirs, key=lambda p: int(p.name.split("_")[1]))
