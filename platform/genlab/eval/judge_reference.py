"""The one compositional judge every caption-world score uses: trained once (a few minutes here) on the first
`JUDGE_TRAIN_ROWS` canvases of the caption set's train split, cached under GENLAB_DATA_DIR, loaded once per
process. Its recipe is fixed here, not chosen on any generator's output."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from genlab.core.checkpoint import load_model, save_checkpoint
from genlab.core.config import load_json, save_json
from genlab.data.captions import CAPTION_SETS, make_rows
from genlab.data.mnist import default_root
from genlab.eval.compositional import CompositionalJudge, config_dict, train_judge

JUDGE_VERSION = 2  # v1 read class from colour too (its held-out numbers: benchmarks/results/judge_v1.json)
JUDGE_TRAIN_ROWS = 40_000
JUDGE_EPOCHS = 4
HELD_OUT_ROWS = 5_000


def judge_dir(root: str | Path | None = None, quick: bool = False) -> Path:
    return (Path(root) if root else default_root()) / "judge" / f"compositional-v{JUDGE_VERSION}{'-quick' if quick else ''}"


def _canvases(rows: list[dict]) -> tuple[torch.Tensor, list[dict]]:
    return torch.from_numpy(np.stack([r["image"] for r in rows])), [r["attrs"] for r in rows]


def held_out_canvases(split: str, n: int = HELD_OUT_ROWS, root=None) -> tuple[torch.Tensor, list[dict]]:
    """The caption set's held-out canvases (`test_combos` or `test_templates`, its seed): images and attrs."""
    return _canvases(make_rows(split, n, CAPTION_SETS["captions"].seed, root=root))


def train_reference_judge(out_dir: Path, rows: int = JUDGE_TRAIN_ROWS, epochs: int = JUDGE_EPOCHS,
                          progress: bool = True, root=None) -> dict:
    images, attrs = _canvases(make_rows("train", rows, CAPTION_SETS["captions"].seed, root=root))
    judge = train_judge(images, attrs, epochs=epochs, progress=progress)
    info = {"train_rows": rows, "epochs": epochs, "version": JUDGE_VERSION}
    save_checkpoint(out_dir, family="eval.compositional", config={**config_dict(judge), **info}, model=judge)
    save_json(info, Path(out_dir) / "info.json")
    reference_judge.cache_clear()
    return info


@functools.lru_cache(maxsize=2)
def reference_judge(root: str | Path | None = None, quick: bool = False,
                    retrain: bool = False) -> tuple[CompositionalJudge, dict]:
    """(judge, info), training it first when missing. quick=True: 2,000 canvases, 1 epoch (smoke runs only)."""
    out = judge_dir(root, quick)
    if retrain or not (out / "info.json").exists():
        train_reference_judge(out, *((2_000, 1) if quick else (JUDGE_TRAIN_ROWS, JUDGE_EPOCHS)),
                              progress=not quick, root=root)
    return load_model(out).eval(), load_json(out / "info.json")
