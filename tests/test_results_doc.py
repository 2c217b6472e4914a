"""benchmarks/RESULTS.md is generated: its notes take every measured number from the results JSONs."""

import re
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
import write_results  # noqa: E402


def test_notes_placeholders_resolve_and_format():
    rendered = write_results.render_notes((BENCH / "NOTES.md").read_text())
    assert "{{" not in rendered and "}}" not in rendered
    vae_nll = write_results.load("vae_nll")
    assert f"{vae_nll['iw_nll_nats']:.2f}" in rendered  # a number the notes quote, straight from its JSON


def test_a_placeholder_for_a_missing_result_fails_loudly():
    with pytest.raises(KeyError):
        write_results.render_notes("{{vae_nll > no_such_key | .2f}}")
    assert write_results.render_notes("{{sampler_timing > seconds > ddpm-1000 | /60 | .1f}} min") == \
        f"{write_results.load('sampler_timing')['seconds']['ddpm-1000'] / 60:.1f} min"
    assert re.fullmatch(r"\d+", write_results.render_notes(
        "{{meta_maml_glyphs > metrics > test/5w1s_acc | -meta_maml_fo_glyphs > metrics > test/5w1s_acc | *100 | .0f}}"))
