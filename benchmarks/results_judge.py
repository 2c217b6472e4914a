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


_CATS = ("single_object", "colour", "position", "size", "two_objects", "binding", "overall")
_BARS = {"test_phrasings": 0.90, "test_combos": 0.85}


def caption_generator_rows() -> list[str]:
    """The text-conditioned diffusion model on the caption world: its validation grid (what chose guidance and
    steps) and its one scoring on the test prompts, against issue 38's bars."""
    val, test = load("caption_diffusion_val"), load("caption_diffusion_test")
    if val is None:
        return ["not run: `python benchmarks/caption_generators.py validate --run <caption-diffusion run>`"]
    rows = [f"Validation grid ({val['val_n']} prompts of each validation split, checkpoint `{val['checkpoint']}`, "
            f"`{val['command']}`, {val['date']}): overall relative score, realism FD on val_phrasings.", "",
            "| sampler steps | guidance | val_phrasings overall | val_combos overall | mean | FD | chosen |",
            "|---|---|---|---|---|---|---|"]
    for g in val["grid"]:
        pick = g["guidance"] == val["chosen"]["guidance"] and g["steps"] == val["chosen"]["steps"]
        rows.append(f"| {g['steps']} | {g['guidance']:g} | {g['val_phrasings']['relative']['overall']:.3f} | "
                    f"{g['val_combos']['relative']['overall']:.3f} | {g['val_overall_mean']:.3f} | "
                    f"{g['val_phrasings']['realism_fd']:.1f} | {'**chosen**' if pick else ''} |")
    rows += ["", "What decided: " + val["decided_on"] + "."]
    if val.get("per_epoch_validation"):
        rows += ["", "After each training epoch (EMA weights, the job's own scoring of the first validation prompts): "
                 + "; ".join(f"epoch {e['epoch']}: overall {e.get('val/val_phrasings/overall', 0):.3f} / "
                             f"{e.get('val/val_combos/overall', 0):.3f}, "
                             f"FD {e.get('val/val_phrasings/realism_fd', 0):.0f}"
                             for e in val["per_epoch_validation"]) + "."]
    if test is None:
        return rows + ["", "Test prompts: not scored yet (`python benchmarks/caption_generators.py test --run ...`)."]
    floor = test["realism_floor"]["fd_real_vs_real"]
    rows += ["", f"Test prompts, scored once (`{test['command']}`, {test['date']}; {test['sampler']}, "
             f"{test['steps']} steps, guidance {test['guidance']:g}): relative score (absolute in brackets).", "",
             "| test split | images | " + " | ".join(_CATS)
             + " | bar (overall; every category >= 0.85) | FD (bar <= 5x floor) |",
             "|---|---|" + "---|" * len(_CATS) + "---|---|"]
    for split, bar in _BARS.items():
        r = test[split]
        ok = r["relative"]["overall"] >= bar and all(r["relative"][c] >= 0.85 for c in _CATS)
        rows.append(f"| {split} | {r['n']:,} | " + " | ".join(
            f"{r['relative'][c]:.3f} ({r['absolute'][c]:.3f})" for c in _CATS)
            + f" | >= {bar:.2f}: {verdict(ok)} | {r['realism_fd']:.2f} ({r['realism_fd'] / floor:.1f}x the floor "
              f"{floor:.2f}): {verdict(r['realism_fd'] <= 5 * floor)} |")
    d = test["diversity"]
    rows += ["", f"Within-prompt diversity ({d['k']} seeds x {d['prompts']} test_phrasings prompts, mean pairwise "
             f"distance in the {d['feature']}): generated {d['generated']:.2f}, real renderings {d['real']:.2f} "
             f"(ratio {d['ratio']:.2f}).", "", "What decided: " + test["decided_on"] + "."]
    return rows


def caption_serving_rows() -> list[str]:
    """One 32x32 image of the trained caption pipeline over HTTP, against the in-process floor of the same run."""
    g = load("serve_generate_caption")
    if g is None:
        return ["Serving: not measured yet (`python benchmarks/serve_load.py --pipeline runs/caption-pipeline "
                "--weights <CLIP> --index-dir <empty dir>`)."]
    one, many = g["batched"]["one_client"], g["batched"]["16_clients"]
    floor = g["in_process_one_image"]["p50_ms"]
    ok = one["p50_ms"] <= 50 and one["p50_ms"] <= 3 * floor
    s = g.get("pipeline_sampler") or {}
    return ["", f"Serving the trained caption pipeline ({s.get('kind')}, {s.get('steps')} steps, guidance "
            f"{s.get('guidance')}; `{g.get('command', 'python benchmarks/serve_load.py --pipeline <pipeline>')}`, "
            f"{g['date']}; CPU: {g.get('cpu', '?')}; {g['mode']}):", "",
            "| check | bar | measured | verdict |", "|---|---|---|---|",
            f"| one image via HTTP, one client, p50 | <= 50 ms and <= 3x in-process | {one['p50_ms']:.1f} ms (p95 "
            f"{one['p95_ms']:.1f}, {one['ok']} requests); in-process {floor:.1f} ms, ratio "
            f"{one['p50_ms'] / floor:.2f} | {verdict(ok)} |",
            f"| 16 clients, one image each: images/s, errors, p99 | (reported) | {many['throughput_rps']:.1f} "
            f"images/s, {many['errors']} errors, p99 {many['p99_ms']:.0f} ms | |"]
