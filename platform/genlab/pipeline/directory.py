"""Where a saved pipeline keeps what: the one module outside the pipeline classes that knows the directory layout
(`pipeline.json` and the component folders), so that serving and jobs ask instead of reading files themselves.

    pipeline_dir("runs/pipeline__0__<time>")  # a run directory or the pipeline directory in it, checked
    pipeline_kind(path)                       # 'prior_vae', 'diffusion' or 'caption_diffusion'
    pipeline_clip(path)                       # (open_clip model name, weights file) or None (the caption model)
"""

from __future__ import annotations

from pathlib import Path

from genlab.core.config import load_json

META = "pipeline.json"


def pipeline_dir(path: str | Path) -> Path:
    """A pipeline directory, or the run directory holding one in `pipeline/`, checked."""
    path = Path(path)
    if (path / "pipeline" / META).exists():
        path = path / "pipeline"
    if not (path / META).exists():
        raise FileNotFoundError(f"pipeline {str(path)!r}: no {META} there (write one with `python jobs/pipeline.py` "
                                "or `python benchmarks/caption_generators.py save`)")
    return path


def pipeline_meta(path: str | Path) -> dict:
    return load_json(pipeline_dir(path) / META)


def pipeline_kind(path: str | Path) -> str:
    return pipeline_meta(path).get("generator", "prior_vae")


def pipeline_clip(path: str | Path) -> tuple[str, str] | None:
    """The CLIP a digit-configuration pipeline reads prompts with (it can serve search too); None for the
    caption model, whose token encoder is part of it."""
    meta, directory = pipeline_meta(path), pipeline_dir(path)
    if meta.get("generator") == "caption_diffusion":
        return None
    return meta["clip_model"], str(directory / "clip" / "model.safetensors")


def newest_pipeline(root: str | Path) -> Path:
    """The newest `pipeline__*` run's pipeline directory under root."""
    runs = sorted((p for p in Path(root).glob("pipeline__*") if (p / "pipeline" / META).exists()),
                  key=lambda p: p.stat().st_mtime)
    if not runs:
        raise FileNotFoundError(f"no pipeline under {root}: build one with `python jobs/pipeline.py` (or "
                                "--smoke-test for a minute) or pass --pipeline <dir>")
    return runs[-1] / "pipeline"
