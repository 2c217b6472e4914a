"""Markdown reports: one table of runs and their figures."""

from __future__ import annotations

import os
from pathlib import Path


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def write_report(path: Path, title: str, intro: str, rows: list[dict], columns: list[str],
                 figures: dict[str, list[Path]]) -> Path:
    """figures: section name -> PNG paths (linked relative to the report)."""
    parts = [f"# {title}", "", intro, "", markdown_table(rows, columns), ""]
    for section, paths in figures.items():
        parts.append(f"## {section}")
        parts += [f"![{p.stem}]({os.path.relpath(p, path.parent)})" for p in paths]
        parts.append("")
    path.write_text("\n".join(parts))
    return path
