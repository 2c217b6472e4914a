"""Run directories `runs/<job>__<seed>__<timestamp>/` and the metrics.jsonl writer."""

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
    """Appends one flat JSON dict per report; every line carries `step`."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def write(self, metrics: dict) -> None:
        if "step" not in metrics:
            raise ValueError("every metrics report needs a 'step' key")
        with self.path.open("a") as f:
            f.write(json.dumps(metrics, default=float) + "\n")

    def rewind(self, step: int) -> None:
        """Drop the records after `step`: a run that resumes from the checkpoint of `step` (or restarts from 0
        because a worker died before its first checkpoint was committed) redoes that work and reports it again."""
        records = read_metrics(self.path)
        kept = [r for r in records if r["step"] <= step]
        if len(kept) < len(records):
            tmp = self.path.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(json.dumps(r, default=float) + "\n" for r in kept))
            tmp.replace(self.path)


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
