"""RESULTS.md's chapter 5.6 sections (meta-learning) from the meta_*.json and tune_*.json results."""

from __future__ import annotations

from results_common import load, verdict


def _acc(m: dict, task: str) -> tuple[float, float] | None:
    if f"test/{task}_acc" not in m:
        return None
    return m[f"test/{task}_acc"], m[f"test/{task}_ci95"]


def chapter4_rows() -> list[str]:
    rows = ["| check | bar | measured (600 test episodes, +- 95% CI) | verdict | meta-training | command |",
            "|---|---|---|---|---|---|"]
    specs = [("protonet_glyphs", "ProtoNet, held-out glyph scripts", [("5w1s", 0.97), ("5w5s", 0.99), ("20w1s", None)]),
             ("maml_glyphs", "MAML (second order), held-out glyph scripts", [("5w1s", 0.95)]),
             ("maml_fo_glyphs", "MAML (first order), held-out glyph scripts", [("5w1s", None)]),
             ("protonet_cross", "ProtoNet, glyphs + Omniglot small1 -> small2-only alphabets", [("5w1s", None),
                                                                                              ("20w1s", None)]),
             ("maml_cross", "MAML (second order), glyphs + small1 -> small2-only alphabets", [("5w1s", None)]),
             ("maml20_cross", "MAML (second order, 20-way head), glyphs + small1 -> small2-only", [("20w1s", None)])]
    rows += _bar_rows(specs)
    for name, label in (("tune_maml", "MAML sweep (Optuna + ASHA)"), ("tune_beta_vae", "beta-VAE sweep")):
        r = load(name)
        if r is not None:
            final = r.get("final", {}).get("metrics", {})
            test = {k: v for k, v in final.items() if k in ("eval/neg_elbo_nats", "eval/iw_nll_nats")
                    or k.startswith("test/5w1s_acc")}
            final_txt = ("; best config's final run, test: " + ", ".join(f"{k} = {v:.4g}" for k, v in test.items())
                         if test else "")
            rows.append(f"| {label} | >= 12 trials | {len(r['trials'])} trials; best {r['metric']} = "
                        f"{r['best'][r['metric']]:.4g}{final_txt} | {verdict(len(r['trials']) >= 12)} | "
                        f"{r['wall_s'] / 60:.1f} min | `{r['command']}` |")
    return rows


# (preset, what it adds) in the order the changes were made; each row is 3000 updates, tested on the same episodes
HANDWRITING_STEPS = [
    ("protonet_cross", "before: episodes drawn uniformly over glyphs + small1 (hand-drawn classes ~2%)"),
    ("cross_mix50", "half the episodes from the hand-drawn classes"),
    ("cross_mix50_aug", "+ a random affine warp of every training image"),
    ("cross_hand_only_aug", "hand-drawn episodes only (no glyphs), warped"),
    ("cross_strokes_mix50_aug", "+ glyphs thinned to centre lines, redrawn with Omniglot's pen (half the episodes)"),
    ("pretrain_cross_strokes_mix50_aug", "baseline: a plain classifier on the same data, nearest class mean"),
]
HANDWRITING_BARS = [("protonet_hand", "ProtoNet, hand-drawn episodes only, warped, 10k updates",
                     [("5w1s", 0.97), ("20w1s", 0.85)]),
                    ("protonet_hand_strokes75",
                     "ProtoNet, a quarter of the episodes stroke glyphs, warped, 10k updates",
                     [("5w1s", None), ("20w1s", None)]),
                    ("pretrain_hand", "baseline: classifier features, nearest class mean, same data and budget",
                     [("5w1s", None), ("20w1s", None)]),
                    ("maml_hand", "MAML (second order), hand-drawn episodes only, warped", [("5w1s", None)]),
                    ("protonet_hand40", "ProtoNet, 40-way training episodes, hand-drawn only, warped, 10k updates",
                     [("5w1s", 0.97), ("20w1s", 0.85)]),
                    ("protonet_hand40", "the same model, each embedding averaged over the image and 8 random warps "
                     "of it (fixed before the run)", [("5w1s_tta", 0.97), ("20w1s_tta", 0.85)]),
                    ("protonet_hand40_20k", "the same with 20k updates",
                     [("5w1s", 0.97), ("20w1s", 0.85)]),
                    ("protonet_hand40_20k", "the 20k-update model, 8 warps averaged (fixed before the run)",
                     [("5w1s_tta", 0.97), ("20w1s_tta", 0.85)]),
                    ("protonet_hand40_20k_seed1", "the same 20k-update run from seed 1, 8 warps averaged",
                     [("5w1s_tta", 0.97), ("20w1s_tta", 0.85)]),
                    ("protonet_hand40_20k_seed1", "the same 20k-update run from seed 1, one embedding per image",
                     [("5w1s", None), ("20w1s", None)])]


def handwriting_rows() -> list[str]:
    """Test alphabets: small2's Japanese (katakana), Sanskrit and Tagalog, never in meta-training."""
    rows = ["| change | 5-way 1-shot | 20-way 1-shot | meta-training | command |", "|---|---|---|---|---|"]
    for name, label in HANDWRITING_STEPS:
        r = load(f"meta_{name}")
        cmd = f"python benchmarks/chapter4_meta.py --only {name}"
        if r is None:
            rows.append(f"| {label} | not run | | | `{cmd}` |")
            continue
        cells = [_cell(_acc(r["metrics"], t)) for t in ("5w1s", "20w1s")]
        rows.append(f"| {label} | {cells[0]} | {cells[1]} | {_train_desc(r)} | `{cmd}` |")
    return rows + ["", "| check | bar | measured (600 test episodes, +- 95% CI) | verdict | meta-training | command |",
                   "|---|---|---|---|---|---|", *_bar_rows(HANDWRITING_BARS)]


def _bar_rows(specs: list) -> list[str]:
    """One row per (preset, task): the bar (or "(reported)"), the measured accuracy +- CI, the verdict."""
    rows = []
    for name, label, tasks in specs:
        r = load(f"meta_{name}")
        cmd = f"python benchmarks/chapter4_meta.py --only {name}"
        for task, bar in tasks:
            bar_txt = f">= {bar:.0%}" if bar else "(reported)"
            if r is None:
                rows.append(f"| {label}: {task} | {bar_txt} | not run | | | `{cmd}` |")
                continue
            got = _acc(r["metrics"], task)
            if got is None:
                rows.append(f"| {label}: {task} | {bar_txt} | not measured | | | `{cmd}` |")
                continue
            rows.append(f"| {label}: {task} | {bar_txt} | {_cell(got)} | {verdict(got[0] >= bar) if bar else ''} | "
                        f"{_train_desc(r)} | `{cmd}` |")
    return rows


def _cell(got: tuple[float, float] | None) -> str:
    return "-" if got is None else f"{got[0]:.2%} +- {got[1]:.2%}"


def _train_desc(r: dict) -> str:
    c = r["config"]
    if c["algo"] == "pretrain":
        return f"{c['episodes']} steps on batches of {c['n_way'] * (c['k_shot'] + c['n_query'])} images, " \
            f"{r['wall_s'] / 60:.1f} min"
    took = (f"{r['epochs_s_all_processes'] / 60:.1f} min of epochs over resumed processes" if r.get("resumed")
            else f"{r['wall_s'] / 60:.1f} min")
    return f"{c['episodes']} updates of {c['tasks_per_batch']}x {c['n_way']}-way {c['k_shot']}-shot, {took}"
