"""Every job's command line: tyro over its Args dataclass, with `--config FILE` for defaults from a file.

    python jobs/vae.py --config runs/vae-conv-beta1__0__<time>/config.json   # replay a run's settings
    python jobs/vae.py --config my_run.yaml --train.epochs 3                  # a file, then flags on top

The file is JSON or YAML and holds any subset of the Args fields (nested as the flags are: `train: {epochs: 3}`).
A run directory's `config.json` holds the training config alone; for a job whose Args has a `train` field it is
read as that field. Flags given beside `--config` override the file. Unknown keys are an error that names the
known ones.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import TypeVar

import tyro

from genlab.core.config import from_dict, to_dict

T = TypeVar("T")
CONFIG_HELP = ("--config FILE  defaults from a JSON/YAML file or a run's config.json (flags given beside it win); "
               "e.g. --config runs/<run>/config.json replays that run")


def _split_config(argv: list[str]) -> tuple[str, list[str]]:
    rest, path, i = [], "", 0
    while i < len(argv):
        a = argv[i]
        if a == "--config":
            if i + 1 >= len(argv):
                raise SystemExit("--config needs a file: --config runs/<run>/config.json (or a .yaml / .json)")
            path, i = argv[i + 1], i + 2
            continue
        if a.startswith("--config="):
            path = a.split("=", 1)[1]
        else:
            rest.append(a)
        i += 1
    return path, rest


def _read(path: str) -> dict:
    file = Path(path).expanduser()
    if file.is_dir() and (file / "config.json").exists():
        file = file / "config.json"  # a run directory
    if not file.is_file():
        raise SystemExit(f"--config {path}: no such file (give a .json / .yaml file or a run directory)")
    text = file.read_text()
    if file.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text) or {}
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise SystemExit(f"--config {path}: expected a mapping of fields, got {type(data).__name__}")
    return data


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def defaults_from_file(args_type: type[T], path: str) -> T:
    """An Args instance: the dataclass's defaults with the file's fields on top."""
    data = _read(path)
    names = {f.name for f in dataclasses.fields(args_type)}
    if "train" in names and "train" not in data and not set(data) & (names - {"train"}):
        data = {"train": data}  # a run's config.json: the training config alone
    try:
        return from_dict(args_type, _merge(to_dict(args_type()), data))
    except (TypeError, ValueError) as err:
        raise SystemExit(f"--config {path}: {err}") from None


def cli(args_type: type[T], argv: list[str] | None = None, description: str | None = None) -> T:
    """tyro.cli(args_type) with `--config FILE` (see the module docstring)."""
    path, rest = _split_config(sys.argv[1:] if argv is None else list(argv))
    default = defaults_from_file(args_type, path) if path else None
    doc = description or (sys.modules["__main__"].__doc__ or "").strip()
    return tyro.cli(args_type, args=rest, default=default, description=f"{doc}\n\n{CONFIG_HELP}".strip())
