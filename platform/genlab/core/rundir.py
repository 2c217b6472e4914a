"""Run directories `runs/<job>__<seed>__<timestamp>/` and the metrics writer: metrics.jsonl, and beside it
TensorBoard event files in `<run>/tensorboard/` (every numeric metric as a scalar, every figure the run writes as
an image): `tensorboard --logdir runs`."""

from __future__ import annotations

import json
import time
from pathlib import Path

from genlab.core.config import save_json, to_dict


def make_run_dir(job: str, seed: int, root: str | Path = "runs", config=None) -> Path:
    """Create a fresh run directory; write config.json when a config dataclass is given."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(root) / f"{job}__{seed}__{stamp}"
    suffix = 1
    while path.exists():  # two runs in the same second
        path = Path(root) / f"{job}__{seed}__{stamp}-{suffix}"
        suffix += 1
    path.mkdir(parents=True)
    if config is not None:
        save_json(to_dict(config), path / "config.json")
    return path.resolve()


class MetricsWriter:
    """Appends one flat JSON dict per report; every line carries `step`. Each report also goes to TensorBoard
    (when the `tensorboard` package is installed): numeric values as scalars, and the run directory's PNG figures
    that are new or changed since the last report as images at that step."""

    def __init__(self, path: Path, tensorboard: bool = True):
        self.path = Path(path)
        self._tensorboard = tensorboard
        self._board = None
        self._figures: dict[str, float] = {}  # figure name -> mtime already logged

    def write(self, metrics: dict) -> None:
        if "step" not in metrics:
            raise ValueError("every metrics report needs a 'step' key")
        with self.path.open("a") as f:
            f.write(json.dumps(metrics, default=float) + "\n")
        board = self._open_board()
        if board is not None:
            step = int(metrics["step"])
            for key, value in metrics.items():
                if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    board.add_scalar(key, value, step)
            self._log_figures(board, step)
            board.flush()  # a worker can be killed at any point: what was reported is on disk

    def _open_board(self, purge_step: int | None = None):
        if self._board is None and self._tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard not installed: metrics.jsonl alone
                self._tensorboard = False
                return None
            self._board = SummaryWriter(str(self.path.parent / "tensorboard"), purge_step=purge_step)
        return self._board

    def _log_figures(self, board, step: int) -> None:
        import numpy as np
        from PIL import Image

        for png in sorted(self.path.parent.glob("*.png")):
            try:
                mtime = png.stat().st_mtime
                if self._figures.get(png.name) == mtime:
                    continue
                with Image.open(png) as im:
                    board.add_image(f"figures/{png.stem}", np.asarray(im.convert("RGB")), step, dataformats="HWC")
                self._figures[png.name] = mtime
            except OSError:  # being written right now: the next report logs it
                continue

    def rewind(self, step: int) -> None:
        """Drop the records after `step`: a run that resumes from the checkpoint of `step` (or restarts from 0
        because a worker died before its first checkpoint was committed) redoes that work and reports it again.
        TensorBoard's events after `step` are purged as well."""
        records = read_metrics(self.path)
        kept = [r for r in records if r["step"] <= step]
        if len(kept) < len(records):
            tmp = self.path.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(json.dumps(r, default=float) + "\n" for r in kept))
            tmp.replace(self.path)
        if self._board is not None:
            self._board.close()
            self._board = None
        self._open_board(purge_step=step + 1)


TIMELINE = "timeline.jsonl"


def mark_event(run_dir: str | Path, event: str, step: int) -> None:
    """Append `{"event", "at" (epoch s), "step"}` to the run's timeline.jsonl: the points a timing or an overlap
    check names (`first_step_end`: the first optimizer step of a (re)start applied; `last_step_end`: training
    over, before the final evaluation)."""
    with (Path(run_dir) / TIMELINE).open("a") as f:
        f.write(json.dumps({"event": event, "at": time.time(), "step": step}) + "\n")


def read_timeline(run_dir: str | Path, event: str) -> list[dict]:
    """Every `event` record of a run's timeline, oldest first (one per (re)start of training)."""
    return [r for r in read_metrics(Path(run_dir) / TIMELINE) if r["event"] == event]


def read_metrics(path: Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
