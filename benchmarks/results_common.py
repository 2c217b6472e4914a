"""What every section of RESULTS.md uses: the results JSON by name, the verdict cell, a mean (min, max) cell."""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parents[1]


def portable(arg: str) -> str:
    """A path of this machine as the repository sees it (`benchmarks/x.py`, `../longruns/run`), so that no
    committed result or document names a machine's own folders."""
    if not arg.startswith("/"):
        return arg
    path = Path(arg)
    for base, prefix in ((ROOT, ""), (ROOT.parent, "../")):
        if path.is_relative_to(base):
            return prefix + str(path.relative_to(base))
    return arg


def command(argv: list[str] | None = None) -> str:
    """The command line that made a result, for its JSON's `command` field."""
    return "python " + " ".join(portable(a) for a in (sys.argv if argv is None else argv))


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _span(values: list[float], fmt: str = "{:,.0f}") -> str:
    if not values:
        return "-"
    return f"{fmt.format(sum(values) / len(values))} (min {fmt.format(min(values))}, max {fmt.format(max(values))})"
