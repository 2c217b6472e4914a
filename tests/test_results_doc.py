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


def test_results_md_is_the_current_rendering_of_the_results():
    """A JSON, NOTES.md or a renderer changed without `python benchmarks/write_results.py` fails here."""
    assert write_results.render() == (BENCH / "RESULTS.md").read_text(), \
        "RESULTS.md is stale: run `python benchmarks/write_results.py` and commit it"


def test_readme_results_at_a_glance_is_the_current_rendering():
    readme = write_results.README.read_text()
    assert write_results.render_readme(readme) == readme, \
        "README.md's results table is stale: run `python benchmarks/write_results.py` and commit it"
    assert "| 5.6 meta-learning |" in readme  # the table is there, between its markers


MACHINE_PATH = re.compile(r"(?<![\w.~-])/(work|tmp|root|home|Users|opt)/")


DOCS = ["README.md", "benchmarks/RESULTS.md", "benchmarks/NOTES.md",
        *sorted(f"docs/{p.name}" for p in (BENCH.parent / "docs").glob("*.md"))]


@pytest.mark.parametrize("doc", DOCS)
def test_no_path_of_a_machine_in_a_committed_document(doc):
    text = (BENCH.parent / doc).read_text()
    hits = [line for line in text.splitlines() if MACHINE_PATH.search(line)]
    assert not hits, f"{doc} names a machine's own folders (use repository-relative paths): {hits[:3]}"


def test_commands_in_results_are_repository_relative():
    from results_common import command, portable

    root = BENCH.parent
    assert portable(str(root / "benchmarks" / "x.py")) == "benchmarks/x.py"
    assert portable(str(root.parent / "longruns" / "run")) == "../longruns/run"
    assert command([str(root / "benchmarks" / "x.py"), "--only", "a"]) == "python benchmarks/x.py --only a"


def test_caption_generator_rule_picks_the_best_validation_mean_and_breaks_ties_toward_fewer_steps():
    import caption_generators

    grid = [{"steps": 20, "guidance": 3.0, "val_overall_mean": 0.80},
            {"steps": 10, "guidance": 5.0, "val_overall_mean": 0.797},   # within the tie margin: fewer steps win
            {"steps": 10, "guidance": 1.0, "val_overall_mean": 0.60},
            {"steps": 20, "guidance": 5.0, "val_overall_mean": 0.70}]
    assert caption_generators.choose(grid) == grid[1]
    grid[1]["val_overall_mean"] = 0.79  # out of the margin now: the best mean wins
    assert caption_generators.choose(grid) == grid[0]
