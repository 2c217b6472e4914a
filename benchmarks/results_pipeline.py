"""RESULTS.md tables of the final system (text -> CLIP -> prior -> VAE decoder -> GAN refiner, and the
text-conditioned DDPM beside it): pipeline_bars.py and serve_load.py --pipeline results."""

from __future__ import annotations

from results_common import load, verdict


def pipeline_rows() -> list[str]:
    """The final system (text -> CLIP -> prior -> VAE decoder -> GAN refiner), from pipeline_bars.py and
    serve_load.py --pipeline."""
    r = load("pipeline")
    if r is None:
        return ["not run: `python jobs/pipeline.py`, then `python benchmarks/pipeline_bars.py --run <run>`"]
    m, cmd = r["report"], f"`{r['command']}` ({r['date']}, run {r['run']})"
    n = m["n_images"]
    faithful, raw_faithful = m["refined/class_agreement"], m["raw/class_agreement"]
    cut = m["refiner_fld_reduction"]
    per_digit = ", ".join(f"{m['diversity/' + str(d)]['recall']:.2f}" for d in range(10))
    rows = ["| check | bar | measured | verdict | command |", "|---|---|---|---|---|",
            f"| prompt faithfulness: reference classifier agrees with the named digit, held-out templates, {n:,} "
            f"images (refined) | >= 0.90 | {faithful:.4f} | {verdict(faithful >= 0.90)} | {cmd} |",
            f"| refiner: FLD ratio of refined vs raw decodes of the same latents | >= 30% lower | "
            f"{m['refined/fld_ratio']:.2f} vs {m['raw/fld_ratio']:.2f} ({100 * cut:.1f}% lower) | "
            f"{verdict(cut >= 0.30)} | same |",
            f"| refiner: faithfulness not lower than the raw decodes' | >= {raw_faithful:.4f} | {faithful:.4f} | "
            f"{verdict(faithful >= raw_faithful)} | same |",
            f"| class-histogram entropy over class-balanced prompts (fraction of log 10) | >= 0.98 | "
            f"{m['refined/class_entropy_frac']:.4f} | {verdict(m['refined/class_entropy_frac'] >= 0.98)} | same |",
            f"| precision / recall of all {n:,} refined images vs the test set | (reported) | "
            f"{m['refined/precision']:.3f} / {m['refined/recall']:.3f} (raw decodes {m['raw/precision']:.3f} / "
            f"{m['raw/recall']:.3f}) | | same |",
            f"| within-prompt precision / recall: 100 images of one prompt vs 100 test images of its digit, mean of "
            f"10 digits | (reported) | {m['diversity/mean_precision']:.3f} / {m['diversity/mean_recall']:.3f} "
            f"(recall per digit: {per_digit}) | | same |"]
    for stage, c in r["stages"].items():
        rows.append(f"| training cost: {stage} | (reported) | {c['train_s'] / 60:.1f} min, {c['steps']:,} steps | | "
                    "same |")
    for name in ("serve_generate", "serve_generate_fast"):
        g = load(name)
        if g is None:
            continue
        flag = " --fast-ingress" if name.endswith("fast") else ""
        one, many = g["batched"]["one_client"], g["batched"]["16_clients"]
        gcmd = f"`python benchmarks/serve_load.py --pipeline <pipeline run> --index-dir <empty dir>{flag}` ({g['date']})"
        smoke = g.get("pipeline_smoke_trained")
        what = "a smoke-trained pipeline: the serving mechanics, not a trained model" if smoke else "a trained pipeline"
        rows += [f"| one image via HTTP (POST /api/generate), one client, p50 ({g['mode']}; {what}) | <= 50 ms | "
                 f"{one['p50_ms']:.1f} ms (p95 {one['p95_ms']:.1f}, {one['ok']} requests) | "
                 f"{'not judged: smoke-trained' if smoke else verdict(one['p50_ms'] <= 50)} | {gcmd} |",
                 f"| 16 clients, one image each, generator batched ({g['mode']}): images/s, errors, p99 | (reported) | "
                 f"{many['throughput_rps']:.0f} images/s, {many['errors']} errors, p99 {many['p99_ms']:.0f} ms | | "
                 f"same |"]
        if "unbatched" in g:
            u = g["unbatched"]["16_clients"]
            rows.append(f"| the same, generator unbatched ({g['mode']}) | (reported) | {u['throughput_rps']:.0f} "
                        f"images/s, p99 {u['p99_ms']:.0f} ms | | same |")
    if "temperature_1" in r:
        t1 = r["temperature_1"]
        rows.append(f"| the same at temperature 1.0 (the fitted prior, not scaled): faithfulness refined / raw, FLD "
                    f"ratio refined / raw | (reported) | {t1['refined/class_agreement']:.4f} / "
                    f"{t1['raw/class_agreement']:.4f}, {t1['refined/fld_ratio']:.2f} / {t1['raw/fld_ratio']:.2f} | | "
                    f"`python benchmarks/pipeline_bars.py --run <pipeline run>` |")
    ablation = load("pipeline_ablation")
    if ablation:
        rows += ["", f"What was tried, at one budget ({ablation['command']}, {ablation['date']}; "
                 f"{10 * ablation['per_digit']:,} images of held-out-template prompts per cell; prior variants trained "
                 f"{ablation['rows'][0]['epochs']} epochs each in one process, put in the run's pipeline; refiners of "
                 "other runs put in the run's pipeline with its prior):", "",
                 "| part | variant | faithfulness refined / raw, T=0.8 | the same, T=1.0 | FLD ratio refined / raw, "
                 "T=0.8 | the same, T=1.0 |", "|---|---|---|---|---|---|"]
        for a in ablation["rows"]:
            cells = [f"{a[f't{t}/refined/class_agreement']:.4f} / {a[f't{t}/raw/class_agreement']:.4f}"
                     for t in (0.8, 1.0)]
            cells += [f"{a[f't{t}/refined/fld_ratio']:.2f} / {a[f't{t}/raw/fld_ratio']:.2f}" for t in (0.8, 1.0)]
            rows.append(f"| {a['part']} | {a['variant']} | " + " | ".join(cells) + " |")
    return rows


def generator_rows() -> list[str]:
    """The two generators behind the pipeline's one interface, one run, the same CLIP (pipeline_bars --generators)."""
    r = load("pipeline_generators")
    if r is None:
        return ["not run: `python jobs/pipeline.py --text-ddpm ...`, then `python benchmarks/pipeline_bars.py --run "
                "<run> --generators`"]
    g, rows = r["generators"], []
    names = {"prior_vae": "prior -> VAE decoder -> GAN refiner", "diffusion": "text-conditioned DDPM"}
    for key, m in g.items():
        train = ", ".join(f"{s} {c['train_s'] / 60:.1f} min" for s, c in m["train"].items())
        sampler = m.get("sampler")
        how = (f" ({sampler['kind']}-{sampler['steps']}, guidance {sampler['guidance']:g})" if sampler else
               " (temperature 0.8)")
        rows.append(f"| {names[key]}{how} | {m['refined/class_agreement']:.4f} | {m['refined/fld_ratio']:.2f} | "
                    f"{m['refined/class_entropy_frac']:.4f} | {m['refined/precision']:.3f} / {m['refined/recall']:.3f} | "
                    f"{m['diversity/mean_precision']:.3f} / {m['diversity/mean_recall']:.3f} | "
                    f"{m['latency_1_image']['p50_ms']:.1f} ms | {m['images_per_s']:.0f} | {train} |")
    n = g["prior_vae"]["n_images"]
    out = [f"Both generators of one run on the same CLIP ({r['command']}; {r['date']}, run {r['run']}, "
           f"{r['threads']} threads). Faithfulness, FLD ratio, entropy and precision/recall on {n:,} held-out-template "
           "prompts as in the table above; diversity: 100 images of one prompt per digit; latency: one image "
           "in-process; images/s: the evaluation's batches of 64.", "",
           "**No comparison is decided from this table.** Each generator's setting (the prior's temperature, the "
           "DDPM's guidance scale) was chosen on the same held-out-template prompts that score it, and the DDPM "
           "comes near the prior chain's faithfulness at another guidance scale (below). A comparison at settings "
           "each picked on validation prompts, scored once on test prompts, needs the generators trained again on "
           "the final system's fixed prompt splits.", "",
           "| generator | faithfulness | FLD ratio | class entropy | precision / recall | within-prompt precision / "
           "recall | one image, p50 | images/s | training cost |", "|---|---|---|---|---|---|---|---|---|", *rows]
    sweep = g["diffusion"].get("guidance", {})
    if sweep:
        out += ["", "The DDPM's guidance scale (" + ", ".join(
            f"{float(k):g}: faithfulness {v['refined/class_agreement']:.3f}, FLD ratio {v['refined/fld_ratio']:.2f}"
            for k, v in sweep.items()) + f"; {10 * r['guidance_per_digit']:,} images each)."]
    return out
