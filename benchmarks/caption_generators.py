"""The final system's text-conditioned diffusion model on the caption world (issue 38), scored by the
compositional judge in two separate steps:

    python benchmarks/caption_generators.py validate --run <caption-diffusion run dir>
        -> benchmarks/results/caption_diffusion_val.json: every guidance scale x sampler step count on the first
           --val-n prompts of both validation splits; the chosen setting by the rule below.
    python benchmarks/caption_generators.py test --run <caption-diffusion run dir>
        -> benchmarks/results/caption_diffusion_test.json: the setting chosen on validation, scored once on every
           prompt of both test splits (2,000 each), with the realism distance and the within-prompt diversity.
           Refuses to run when that file exists already (the test prompts are touched once per reported model).

    python benchmarks/caption_generators.py save --run <caption-diffusion run dir> --out runs/caption-pipeline
        -> the CaptionDiffusionPipeline directory (EMA weights, the sampler chosen on validation) that
           jobs/serve_generate.py --pipeline serves and benchmarks/serve_load.py times.

The selection rule, fixed before any validation score was seen: the highest mean of the overall relative score
over val_phrasings and val_combos; ties (within 0.005) go to the fewer steps, then to the lower guidance.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "platform"))
sys.path.insert(0, str(HERE))

from genlab.core.config import load_json, save_json  # noqa: E402
from results_common import command, portable  # noqa: E402

VAL_SPLITS = ("val_phrasings", "val_combos")
TEST_SPLITS = ("test_phrasings", "test_combos")
TIE = 0.005


def _model(run: str):
    from genlab.core.checkpoint import find_latest_checkpoint, load_model

    ckpt = find_latest_checkpoint(run)
    if ckpt is None:
        raise SystemExit(f"{run}: no checkpoint (a caption-diffusion run directory from jobs/caption_diffusion.py)")
    return load_model(ckpt, ema=True).eval(), ckpt


def _generate(model, guidance: float, steps: int):
    return lambda tokens, seed: model.generate(tokens, seed=seed, guidance=guidance, steps=steps)


def choose(grid: list[dict]) -> dict:
    """The validation rule of the module docstring."""
    best = max(r["val_overall_mean"] for r in grid)
    near = [r for r in grid if r["val_overall_mean"] >= best - TIE]
    return min(near, key=lambda r: (r["steps"], r["guidance"]))


def validate(args) -> None:
    import torch

    from genlab.eval.judge_reference import reference_judge
    from genlab.pipeline.caption_evaluate import score_generator

    torch.manual_seed(0)
    model, ckpt = _model(args.run)
    judge, judge_info = reference_judge()
    grid = []
    for steps, guidance in itertools.product(args.steps, args.guidance):
        t0 = time.perf_counter()
        row = {"guidance": guidance, "steps": steps}
        for split in VAL_SPLITS:
            r = score_generator(_generate(model, guidance, steps), judge, split, args.val_n)
            row[split] = {k: r[k] for k in ("n", "absolute", "relative", "realism_fd")}
        row["val_overall_mean"] = sum(row[s]["relative"]["overall"] for s in VAL_SPLITS) / len(VAL_SPLITS)
        row["seconds"] = round(time.perf_counter() - t0, 1)
        grid.append(row)
        print(f"steps {steps} guidance {guidance}: overall relative "
              + ", ".join(f"{s} {row[s]['relative']['overall']:.3f}" for s in VAL_SPLITS)
              + f"; FD {row['val_phrasings']['realism_fd']:.1f} ({row['seconds']} s)", flush=True)
    chosen = choose(grid)
    out = {"command": command(), "run": portable(str(Path(args.run).resolve())),
           "date": time.strftime("%Y-%m-%d"), "checkpoint": ckpt.name, "judge": judge_info,
           "model_config": load_json(ckpt / "config.json"), "val_n": args.val_n, "grid": grid,
           "chosen": {"guidance": chosen["guidance"], "steps": chosen["steps"]},
           "decided_on": f"guidance and steps: the rule of benchmarks/caption_generators.py on the first {args.val_n} "
                         "prompts of val_phrasings and val_combos; no test prompt was generated for this file",
           "per_epoch_validation": _per_epoch(args.run)}
    save_json(out, args.out)
    print(f"chosen on validation: guidance {chosen['guidance']}, {chosen['steps']} steps -> {args.out}")


def _per_epoch(run: str) -> list[dict]:
    """The training job's own validation scores after each epoch (EMA weights, the config's sampler, first
    val_prompts of each split): what the epoch count is read against."""
    import json

    path = Path(run) / "metrics.jsonl"
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    keep = ("epoch", "step", "val/val_phrasings/overall", "val/val_combos/overall", "val/val_phrasings/realism_fd")
    return [{k: r[k] for k in keep if k in r} for r in rows if "val/val_phrasings/overall" in r]


def diversity(model, judge, guidance: float, steps: int, n_prompts: int, k: int) -> dict:
    """Within-prompt diversity: mean pairwise L2 distance of the judge's features between k images of one prompt
    (k seeds), over the first n_prompts test_phrasings prompts; the same for k real renderings of each prompt."""
    import torch

    from genlab.data.caption_prompts import load_prompts, render_prompts
    from genlab.data.captions import tokenize

    prompts = load_prompts("test_phrasings")[:n_prompts]
    tokens = tokenize([p.text for p in prompts])
    gen = torch.stack([judge.features(model.generate(tokens, seed=10_000 + j, guidance=guidance, steps=steps))
                       for j in range(k)], 1)
    real = torch.stack([judge.features(render_prompts(prompts, seed=10_000 + j)[0]) for j in range(k)], 1)

    def spread(f):  # (P, k, D) -> mean over prompts of the mean pairwise distance
        d = torch.cdist(f, f)
        return (d.sum((1, 2)) / (k * (k - 1))).mean().item()

    g, r = spread(gen), spread(real)
    return {"prompts": n_prompts, "k": k, "generated": g, "real": r, "ratio": g / r,
            "feature": "judge CanvasNet 128-d penultimate layer"}


def test(args) -> None:
    import torch

    from genlab.eval.judge_reference import reference_judge
    from genlab.pipeline.caption_evaluate import score_generator

    out_path = Path(args.out)
    if out_path.exists():
        if not args.again:
            raise SystemExit(f"{out_path} exists: the test prompts were scored already for this model. A new model "
                             "writes a new file (--out); --again re-scores into a file of its own, and the first "
                             "result stays the reported one.")
        out_path = out_path.with_name(f"{out_path.stem}_again_{time.strftime('%Y%m%d-%H%M%S')}.json")
    val = load_json(args.val)
    guidance, steps = val["chosen"]["guidance"], val["chosen"]["steps"]
    torch.manual_seed(0)
    model, ckpt = _model(args.run)
    if ckpt.name != val["checkpoint"]:
        raise SystemExit(f"{args.val} chose its setting on checkpoint {val['checkpoint']}, not {ckpt.name}")
    judge, judge_info = reference_judge()
    out = {"command": command(), "run": portable(str(Path(args.run).resolve())),
           "date": time.strftime("%Y-%m-%d"), "checkpoint": ckpt.name, "judge": judge_info,
           "guidance": guidance, "steps": steps, "sampler": model.cfg.sampler.kind,
           "decided_on": f"guidance {guidance} and {steps} steps chosen on validation ({Path(args.val).name}); "
                         "epochs fixed at the config's count before training; the test splits scored once here"}
    for split in TEST_SPLITS:
        t0 = time.perf_counter()
        r = score_generator(_generate(model, guidance, steps), judge, split)
        out[split] = {k: r[k] for k in ("n", "absolute", "real_ceiling", "relative", "counts", "realism_fd")}
        out[split]["seconds"] = round(time.perf_counter() - t0, 1)
        print(f"{split}: overall relative {r['relative']['overall']:.3f}, absolute {r['absolute']['overall']:.3f}, "
              f"FD {r['realism_fd']:.2f} ({out[split]['seconds']} s)", flush=True)
    out["diversity"] = diversity(model, judge, guidance, steps, args.diversity_prompts, 4)
    out["realism_floor"] = load_json(HERE / "results" / "judge.json")["realism_floor"]
    save_json(out, out_path)
    print(f"-> {out_path}")


def save(args) -> None:
    from genlab.pipeline.caption_pipeline import CaptionDiffusionPipeline

    val = load_json(args.val)
    pipe = CaptionDiffusionPipeline.from_training_run(args.run)
    from genlab.core.checkpoint import find_latest_checkpoint

    if find_latest_checkpoint(args.run).name != val["checkpoint"]:
        raise SystemExit(f"{args.val} chose its sampler on checkpoint {val['checkpoint']}, not on this run's newest")
    pipe.with_sampler(val["chosen"]["guidance"], val["chosen"]["steps"],
                      chosen_on=f"{Path(args.val).name}: {val['decided_on']}")
    print(f"-> {pipe.save_pretrained(args.out)} (guidance {val['chosen']['guidance']}, {val['chosen']['steps']} steps)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    v = sub.add_parser("validate", help="the guidance x steps grid on the validation prompts")
    v.add_argument("--run", required=True, help="caption-diffusion run (or checkpoint) directory")
    v.add_argument("--guidance", type=float, nargs="+", default=[1.0, 2.0, 3.0, 5.0])
    v.add_argument("--steps", type=int, nargs="+", default=[10, 20])
    v.add_argument("--val-n", type=int, default=500, help="first prompts of each validation split")
    v.add_argument("--out", default=str(HERE / "results" / "caption_diffusion_val.json"))
    t = sub.add_parser("test", help="the chosen setting, once, on both test splits")
    t.add_argument("--run", required=True, help="caption-diffusion run (or checkpoint) directory")
    t.add_argument("--val", default=str(HERE / "results" / "caption_diffusion_val.json"))
    t.add_argument("--diversity-prompts", type=int, default=200)
    t.add_argument("--again", action="store_true", help="re-score although the test file exists")
    t.add_argument("--out", default=str(HERE / "results" / "caption_diffusion_test.json"))
    w = sub.add_parser("save", help="the pipeline directory with the sampler chosen on validation")
    w.add_argument("--run", required=True, help="caption-diffusion run (or checkpoint) directory")
    w.add_argument("--val", default=str(HERE / "results" / "caption_diffusion_val.json"))
    w.add_argument("--out", default="runs/caption-pipeline")
    args = ap.parse_args(argv)
    {"validate": validate, "test": test, "save": save}[args.mode](args)


if __name__ == "__main__":
    main()
