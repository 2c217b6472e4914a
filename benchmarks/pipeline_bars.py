"""The final system's bars (issue: text -> CLIP -> prior -> VAE decoder -> GAN refiner): faithfulness on held-out
templates, the refiner's FLD reduction, class entropy, within-prompt precision/recall, training cost; and an
ablation of the prior's conditioning (text only vs LAFITE's noised image embeddings) at a fixed budget.

    python jobs/pipeline.py --clip runs/clip-rn__0__<time> --vae runs/vae-conv-beta1__0__<time>
    python benchmarks/pipeline_bars.py --run runs/pipeline__0__<time> --ablation

-> benchmarks/results/pipeline.json (and pipeline_ablation.json); RESULTS.md via write_results.py.
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
    for stage in ("vae", "prior", "refiner"):
        path = run / stage / "metrics.jsonl"
        if path.exists():
            epochs = [r for r in read_metrics(path) if "perf/epoch_s" in r]
            out[stage] = {"train_s": round(sum(r["perf/epoch_s"] for r in epochs), 1),
                          "steps": max(r["step"] for r in epochs)}
    return out


def ablation(run: Path, epochs: int, per_digit: int) -> list[dict]:
    """Priors trained in-process at the same budget with different conditioning, each put in the run's pipeline
    (same CLIP, VAE, refiner) and scored on held-out-template prompts."""
    import torch

    from genlab.core.checkpoint import find_latest_checkpoint, load_model
    from genlab.core.runtime import LocalRuntime
    from genlab.data.mnist import load_dataset
    from genlab.pipeline import TextToImagePipeline
    from genlab.pipeline.config import PriorTrainConfig
    from genlab.pipeline.evaluate import evaluate_pipeline
    from genlab.pipeline.train import train_prior

    base = from_dict(PriorTrainConfig, load_json(run / "prior" / "config.json"))
    pipe = TextToImagePipeline.from_pretrained(run / "pipeline")
    variants = [("text only", {"image_embed_frac": 0.0}),
                ("LAFITE: half noised image embeddings, noise 1.0", {"image_embed_frac": 0.5, "image_noise": 1.0}),
                ("LAFITE: half noised image embeddings, noise 0.5", {"image_embed_frac": 0.5, "image_noise": 0.5})]
    train = load_dataset("mnist", "train")
    rows = []
    for name, change in variants:
        cfg = dataclasses.replace(base, epochs=epochs, progress=False, **change)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            train_prior(cfg, LocalRuntime(tmp, {"train": train}, seed=cfg.seed))
            wall = time.perf_counter() - t0
            prior = load_model(find_latest_checkpoint(tmp))
        pipe.prior = prior.eval()
        torch.manual_seed(0)
        report = evaluate_pipeline(pipe, per_digit, seed=0)
        rows.append({"variant": name, **change, "epochs": epochs, "train_s": round(wall, 1),
                     **{k: report[k] for k in ("refined/class_agreement", "raw/class_agreement", "refined/fld_ratio",
                                               "raw/fld_ratio", "refined/class_entropy_frac",
                                               "diversity/mean_recall")}})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--run", required=True, help="a jobs/pipeline.py run directory")
    p.add_argument("--evaluate", action="store_true", help="evaluate again (default: the run's report.json)")
    p.add_argument("--per-digit", type=int, default=1000, help="images per digit when evaluating")
    p.add_argument("--ablation", action="store_true", help="also train and score prior variants")
    p.add_argument("--ablation-epochs", type=int, default=3)
    p.add_argument("--ablation-per-digit", type=int, default=300)
    args = p.parse_args()
    run = Path(args.run).resolve()
    stamp = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, 2 cores"}
    if args.evaluate or not (run / "report.json").exists():
        from genlab.pipeline import TextToImagePipeline
        from genlab.pipeline.evaluate import evaluate_pipeline

        report = evaluate_pipeline(TextToImagePipeline.from_pretrained(run / "pipeline"), args.per_digit)
    else:
        report = load_json(run / "report.json")
    job = load_json(run / "job.json")
    out = {"run": run.name, "report": report, "stages": stage_cost(run), "job": job, **stamp,
           "command": "python jobs/pipeline.py --clip <CLIP run> --vae <VAE run>"}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "pipeline.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if not k.startswith("diversity/")}, indent=1))
    if args.ablation:
        rows = ablation(run, args.ablation_epochs, args.ablation_per_digit)
        (HERE / "results" / "pipeline_ablation.json").write_text(json.dumps({"rows": rows, **stamp,
            "command": f"python benchmarks/pipeline_bars.py --run <pipeline run> --ablation "
                       f"--ablation-epochs {args.ablation_epochs}"}, indent=2) + "\n")


if __name__ == "__main__":
    main()
