"""What every section of RESULTS.md uses: the results JSON by name, the verdict cell, a mean (min, max) cell."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _span(values: list[float], fmt: str = "{:,.0f}") -> str:
    if not values:
        return "-"
    return f"{fmt.format(sum(values) / len(values))} (min {fmt.format(min(values))}, max {fmt.format(max(values))})"
