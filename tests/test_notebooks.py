"""The committed notebooks as a reader meets them on GitHub: executed, with their figures, and with nothing of the
machine that ran them (paths, warnings). CI runs every notebook again at smoke scale (nbmake, scripts/test.sh);
`python scripts/execute_notebooks.py` re-executes and commits them."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
MACHINE = re.compile(r"/work/|/home/|/root/|/tmp/|\.venv|site-packages|/usr/lib/python")
WARNING = re.compile(r"Warning|WARNING")


def _outputs(nb: dict) -> list[dict]:
    return [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]


def _text(output: dict) -> str:
    parts = [output.get("text", "")] + [v for k, v in output.get("data", {}).items() if k.startswith("text/")]
    return "".join("".join(p) if isinstance(p, list) else str(p) for p in parts) + "".join(output.get("traceback", []))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_a_committed_notebook_is_executed_with_its_figures_and_nothing_of_the_machine(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c.get("execution_count") for c in code), f"{path.name}: cells never executed"
    outputs = _outputs(nb)
    assert not [o for o in outputs if o.get("output_type") == "error"], f"{path.name}: an error is committed"
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{path.name}: no figure in its outputs"
    for o in outputs:
        text = _text(o)
        assert not MACHINE.search(text), f"{path.name}: a machine path in an output: {MACHINE.search(text)[0]!r}"
        assert not WARNING.search(text), f"{path.name}: a warning in an output: {text[:300]!r}"
