"""RESULTS.md tables of the final system's judge on the caption world (compositional_judge.py): how well it reads
real held-out canvases, and its scores on real canvases of each prompt split (the ceilings generators are
divided by)."""

from __future__ import annotations

from results_common import load, verdict

_READ = ("layout", "size", "position", "colour", "class")


def judge_rows() -> list[str]:
    rows = ["Prompt splits fixed before any generator trained: `platform/genlab/data/prompt_splits_v1.json` "
            "(`genlab.data.caption_prompts`: validation = the old held-out templates + three new phrasings, and "
            "half of the held-out (class, colour) combinations; test = five new phrasings and the other half).", "",
            "| judge | split (real canvases) | " + " | ".join(_READ) + " | bar (colour, size, position) | command |",
            "|---|---|" + "---|" * len(_READ) + "---|---|"]
    found = False
    for name, label in (("judge_v1", "v1 (the judge code at commit fa47c57): class read from the colour image"),
                        ("judge", "v2: class read from shape")):
        r = load(name)
        if r is None:
            continue
        found = True
        for split in ("test_combos", "test_templates"):
            m = r[f"reading/{split}"]
            ok = all(m[k] >= 0.98 for k in ("colour", "size", "position"))
            rows.append(f"| {label} | {split} ({m['n_images']:,} canvases, {m['n_objects']:,} objects) | "
                        + " | ".join(f"{m[k]:.4f}" for k in _READ) + f" | {verdict(ok)} | `{r['command']}` "
                        f"({r['date']}) |")
    if not found:
        return ["not run: `python benchmarks/compositional_judge.py`"]
    r = load("judge") or load("judge_v1")
    cats = ("single_object", "colour", "position", "size", "two_objects", "binding", "overall")
    rows += ["", "The judge's score on real canvases of each prompt split (test-split objects drawn as each "
             "prompt says): the ceiling a generator's relative score divides by.", "",
             "| prompt split | " + " | ".join(cats) + " |", "|---|" + "---|" * len(cats)]
    for split in ("val_phrasings", "val_combos", "test_phrasings", "test_combos"):
        c = r[f"real_ceiling/{split}"]
        rows.append(f"| {split} | " + " | ".join(f"{c[k]['score']:.3f} ({c[k]['n']})" for k in cats) + " |")
    f = r["realism_floor"]
    rows += ["", f"Realism floor: Frechet distance {f['fd_real_vs_real']:.3f} between two real renderings (different "
             f"draws of objects and jitter) of the {f['n']:,} {f['prompts']} prompts, in the judge's {f['feature']}.",
             "", "What decided the judge: " + r["decided_on"] + ".", "",
             "![judge class confusion](results/judge_confusion.png)" if load("judge") else ""]
    return rows
