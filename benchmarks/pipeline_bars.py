"""The final system's bars (issue: text -> CLIP -> prior -> VAE decoder -> GAN refiner): faithfulness on held-out
templates, the refiner's FLD reduction, class entropy, within-prompt precision/recall, training cost; and an
ablation of the prior's conditioning (text only vs LAFITE's noised image embeddings) at a fixed budget.

    python jobs/pipeline.py --clip runs/clip-rn__0__<time> --vae runs/vae-conv-beta1__0__<time>
    python benchmarks/pipeline_bars.py --run runs/pipeline__0__<time> --ablation

-> benchmarks/results/pipeline.json (and pipeline_ablation.json); RESULTS.md via write_results.py.
The two generators side by side (a run of `jobs/pipeline.py --text-ddpm`: both on the same CLIP):

    python benchmarks/pipeline_bars.py --run runs/pipeline__0__<time> --generators   # -> pipeline_generators.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "platform"))

from genlab.core.config import from_dict, load_json  # noqa: E402
from genlab.core.rundir import read_metrics  # noqa: E402


def stage_cost(run: Path) -> dict:
    """Training seconds (sum of epoch times) and steps of each stage of a pipeline run."""
    out = {}
    for stage in ("vae", "prior", "refiner", "text_ddpm"):
        path = run / stage / "metrics.jsonl"
        if path.exists():
            epochs = [r for r in read_metrics(path) if "perf/epoch_s" in r]
            out[stage] = {"train_s": round(sum(r["perf/epoch_s"] for r in epochs), 1),
                          "steps": max(r["step"] for r in epochs)}
    return out


def faithfulness(pipe, per_digit: int, temperature: float) -> dict:
    """Faithfulness (raw and refined) and FLD ratios on held-out-template prompts, without the diversity part."""
    import torch

    from genlab.eval.sample_quality import sample_quality
    from genlab.pipeline.evaluate import generate_many
    from genlab.pipeline.prompts import balanced_prompts

    prompts, digits = balanced_prompts(per_digit, "heldout", seed=0)
    refined, raw, _ = generate_many(pipe, prompts, seed=0, temperature=temperature)
    out = {}
    for name, images in (("refined", refined), ("raw", raw)):
        q = sample_quality(images, "mnist", requested=torch.tensor(digits))
        out |= {f"{name}/class_agreement": q["class_agreement"], f"{name}/fld_ratio": q["fld_ratio"]}
    return out


def text_separation(pipe, per_digit: int = 200) -> float:
    """How often a held-out-template prompt's CLIP embedding is nearest to the mean embedding of its own digit's
    training-template prompts: whether the text encoder, before any prior, tells the digits apart."""
    import torch
    import torch.nn.functional as F

    from genlab.pipeline.prompts import balanced_prompts, digit_prompts

    centroids = torch.stack([F.normalize(pipe.encode_prompts(pool).mean(0), dim=0) for pool in digit_prompts("train")])
    prompts, digits = balanced_prompts(per_digit, "heldout", seed=1)
    nearest = (pipe.encode_prompts(prompts) @ centroids.T).argmax(1)
    return float((nearest == torch.tensor(digits)).double().mean())


PRIOR_VARIANTS = [
    ("defaults: 30 components, posterior samples as targets, half noised image embeddings (noise 1.0)", {}),
    ("text embeddings only (no LAFITE)", {"image_embed_frac": 0.0}),
    ("10 components", {"prior": {"components": 10}}),
    ("posterior means as targets", {"target": "mean"}),
]


REFINER_VARIANTS = [
    ("text-conditioned, decode-only D (pix2pix's discriminator)", {"class_discriminator": False}),
    ("decode-only U-Net, class-conditional D", {"text_condition": False}),
]


def ablation(run: Path, epochs: int, per_digit: int, refiner_runs: list[str]) -> list[dict]:
    """Prior variants trained in-process at one budget, each put in the run's pipeline (same CLIP, VAE, refiner);
    refiner variants trained in-process at the run's refiner budget (same prior); then other runs' refiners in the
    run's pipeline (same prior). Scored at temperature 0.8 and 1.0."""
    from genlab.core.checkpoint import find_latest_checkpoint, load_model
    from genlab.core.runtime import LocalRuntime
    from genlab.data.mnist import load_dataset
    from genlab.pipeline import TextToImagePipeline
    from genlab.pipeline.config import PriorTrainConfig, RefinerTrainConfig
    from genlab.pipeline.train import train_prior, train_refiner

    base = from_dict(PriorTrainConfig, load_json(run / "prior" / "config.json"))
    pipe = TextToImagePipeline.from_pretrained(run / "pipeline")
    train = load_dataset("mnist", "train")
    rows = []

    def score(row: dict) -> None:
        for t in (0.8, 1.0):
            row |= {f"t{t}/{k}": v for k, v in faithfulness(pipe, per_digit, t).items()}
        rows.append(row)
        print(json.dumps(row), flush=True)

    for name, change in PRIOR_VARIANTS:
        cfg = dataclasses.replace(base, epochs=epochs, progress=False,
                                  **{k: v for k, v in change.items() if k != "prior"})
        cfg = dataclasses.replace(cfg, prior=dataclasses.replace(cfg.prior, **change.get("prior", {})))
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            train_prior(cfg, LocalRuntime(tmp, {"train": train}, seed=cfg.seed))
            wall = time.perf_counter() - t0
            pipe.prior = load_model(find_latest_checkpoint(tmp)).eval()
        score({"part": "prior", "variant": name, "epochs": epochs, "train_s": round(wall, 1)})
    pipe.prior = load_model(run / "pipeline" / "prior").eval()
    refiner_base = from_dict(RefinerTrainConfig, load_json(run / "refiner" / "config.json"))
    for name, change in REFINER_VARIANTS:
        cfg = dataclasses.replace(refiner_base, progress=False, **change)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            train_refiner(cfg, LocalRuntime(tmp, {"train": train}, seed=cfg.seed))
            wall = time.perf_counter() - t0
            pipe.refiner = load_model(find_latest_checkpoint(tmp)).generator.eval()
        score({"part": "refiner", "variant": name, "epochs": cfg.epochs, "train_s": round(wall, 1)})
    for other in refiner_runs:
        job = load_json(Path(other) / "job.json")["refiner"]
        pipe.refiner = load_model(Path(other) / "pipeline" / "refiner").eval()
        conditioned = ("text-conditioned" if job.get("text_condition") else "decode only") + (
            ", class-conditional D" if job.get("class_discriminator") else "")  # runs before the options: off
        score({"part": "refiner", "variant": f"{conditioned}, L1 weight {job['l1_weight']:g}, {job['epochs']} epochs, "
               f"{job['refiner']['channels']} channels", "run": Path(other).name})
    return rows


REPORT_KEYS = ("n_images", "refined/class_agreement", "refined/fld_ratio", "refined/class_entropy_frac",
               "refined/precision", "refined/recall", "diversity/mean_precision", "diversity/mean_recall",
               "images_per_s")


def one_image_latency(pipe, calls: int = 30) -> dict:
    """In-process p50 / p95 of one image for one prompt (a new seed per call), after 3 warm-up calls."""
    import numpy as np

    times = []
    for i in range(calls + 3):
        t0 = time.perf_counter()
        pipe("the digit 7, small, written in red", 1, seed=i)
        times.append(1e3 * (time.perf_counter() - t0))
    return {"p50_ms": float(np.percentile(times[3:], 50)), "p95_ms": float(np.percentile(times[3:], 95))}


def clip_scores(run: Path) -> dict:
    """The zero-shot and held-out-template scores of the CLIP a pipeline run was built on (its final evaluation)."""
    clip = Path(load_json(run / "job.json")["clip"])
    path = (clip if clip.is_dir() else clip.parent) / "metrics.jsonl"
    keys = ("test/zero_shot_mnist_top1", "test/test_templates_attribute_exact_top1")
    recs = [r for r in read_metrics(path) if keys[0] in r] if path.exists() else []
    return {"run": clip.name, **({k.split("/")[1]: recs[-1][k] for k in keys} if recs else {})}


def generators(run: Path, per_digit: int, guidance_per_digit: int) -> dict:
    """The prior chain and the text-conditioned DDPM of one run (same CLIP), both evaluated here on the same
    `per_digit` held-out-template prompts per digit (the job's own reports may use other sizes; FLD depends on N):
    faithfulness, FLD ratio, diversity, in-process latency, training cost; the DDPM at other guidance scales."""
    from genlab.pipeline import TextToImagePipeline
    from genlab.pipeline.evaluate import evaluate_pipeline

    cost = stage_cost(run)
    out = {}
    for name, pipe_dir, stages in (("prior_vae", "pipeline", ("vae", "prior", "refiner")),
                                   ("diffusion", "pipeline_ddpm", ("text_ddpm",))):
        if not (run / pipe_dir / "pipeline.json").exists():
            raise SystemExit(f"{run / pipe_dir} is missing: run `python jobs/pipeline.py --text-ddpm ...` (or resume "
                             "it with --ray.resume)")
        pipe = TextToImagePipeline.from_pretrained(run / pipe_dir)
        r = evaluate_pipeline(pipe, per_digit)
        out[name] = {k: r[k] for k in REPORT_KEYS} | {"latency_1_image": one_image_latency(pipe),
                                                      "train": {s: cost[s] for s in stages if s in cost}}
        if name == "diffusion":
            out[name]["sampler"] = dataclasses.asdict(pipe.diffusion.sampler)
            out[name]["guidance"] = {}
            for g in (1.0, 2.0, 5.0):
                pipe.diffusion.sampler = dataclasses.replace(pipe.diffusion.sampler, guidance=g)
                out[name]["guidance"][g] = faithfulness(pipe, guidance_per_digit, 1.0)
        print(name, json.dumps(out[name]), flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--run", required=True, help="a jobs/pipeline.py run directory")
    p.add_argument("--evaluate", action="store_true", help="evaluate again (default: the run's report.json)")
    p.add_argument("--per-digit", type=int, default=1000, help="images per digit when evaluating")
    p.add_argument("--ablation", action="store_true", help="also train and score prior variants")
    p.add_argument("--ablation-epochs", type=int, default=3)
    p.add_argument("--ablation-per-digit", type=int, default=300)
    p.add_argument("--refiner-runs", nargs="*", default=[], help="pipeline runs whose refiners to compare")
    p.add_argument("--generators", action="store_true",
                   help="only compare the run's two generators (a --text-ddpm run) -> pipeline_generators.json")
    p.add_argument("--guidance-per-digit", type=int, default=100, help="--generators: images per digit per "
                   "guidance scale of the DDPM")
    p.add_argument("--threads", type=int, default=2, help="torch threads for the measurements")
    args = p.parse_args()
    run = Path(args.run).resolve()
    stamp = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, 2 cores"}
    import torch

    torch.set_num_threads(args.threads)
    if args.generators:
        out = {"run": run.name, **stamp, "threads": args.threads, "guidance_per_digit": args.guidance_per_digit,
               "generators": generators(run, args.per_digit, args.guidance_per_digit), "clip": clip_scores(run),
               "command": "python jobs/pipeline.py --clip <CLIP run> --text-ddpm --ray.precision bf16, then "
                          f"python benchmarks/pipeline_bars.py --run <that run> --generators --per-digit "
                          f"{args.per_digit} --guidance-per-digit {args.guidance_per_digit} --threads {args.threads}"}
        (HERE / "results" / "pipeline_generators.json").write_text(json.dumps(out, indent=2) + "\n")
        return
    from genlab.pipeline import TextToImagePipeline

    if args.evaluate or not (run / "report.json").exists():
        from genlab.pipeline.evaluate import evaluate_pipeline

        report = evaluate_pipeline(TextToImagePipeline.from_pretrained(run / "pipeline"), args.per_digit)
    else:
        report = load_json(run / "report.json")
    job = load_json(run / "job.json")
    out = {"run": run.name, "report": report, "stages": stage_cost(run), "job": job, **stamp,
           "command": "python jobs/pipeline.py --clip <CLIP run> --vae <VAE run>"}
    (HERE / "results").mkdir(exist_ok=True)
    pipe = TextToImagePipeline.from_pretrained(run / "pipeline")
    out["temperature_1"] = faithfulness(pipe, args.per_digit, 1.0)
    out["text_separation"] = text_separation(pipe)
    (HERE / "results" / "pipeline.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if not k.startswith("diversity/")}, indent=1))
    if args.ablation:
        rows = ablation(run, args.ablation_epochs, args.ablation_per_digit, args.refiner_runs)
        (HERE / "results" / "pipeline_ablation.json").write_text(json.dumps({"rows": rows, **stamp,
            "per_digit": args.ablation_per_digit, "command": f"python benchmarks/pipeline_bars.py --run <pipeline run> "
            f"--ablation --ablation-epochs {args.ablation_epochs} --refiner-runs <other pipeline runs>"}, indent=2) + "\n")


if __name__ == "__main__":
    main()
