"""README.md's Python quick start, extracted from the README and run verbatim (in a fresh interpreter, in a scratch
directory holding smoke-sized versions of the saved pipeline and index it opens), and the README's size."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quickstart_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"<!-- quickstart -->\n```python\n(.*?)```", text, flags=re.S)


def test_the_readme_quick_start_runs_verbatim(tmp_path):
    from tests.pipeline_helpers import tiny_caption_pipeline
    from tests.serve_helpers import build_caption_index, train_tiny_clip

    blocks = quickstart_blocks()
    assert len(blocks) == 2, "README.md lost a quick-start block (each follows a <!-- quickstart --> line)"
    tiny_caption_pipeline(tmp_path / "runs" / "caption-pipeline")
    build_caption_index(train_tiny_clip(tmp_path / "clip", steps=20), tmp_path / "runs" / "index")
    env = os.environ | {"PYTHONPATH": f"{ROOT / 'platform'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    outs = []
    for block in blocks:
        out = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=600)
        assert out.returncode == 0, block + "\n" + out.stderr[-3000:]
        outs.append(out.stdout)
    assert "eval/" in outs[0] and "torch.Size([4, 3, 32, 32])" in outs[1] and "captions_small:" in outs[1]


def test_the_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text().splitlines()
    chapters = next(i for i, line in enumerate(lines) if line.startswith("## Chapters"))
    assert chapters <= 150, f"README.md has {chapters} lines before its chapter links (at most 150)"
    long = [i + 1 for i, line in enumerate(lines) if len(line) > 120]
    assert not long, f"README.md lines over 120 characters: {long}"
