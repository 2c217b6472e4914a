"""Chapter 5.6 benchmarks: ProtoNets and MAML meta-trained here, tested on 600 episodes of held-out scripts /
alphabets (accuracy +- 95% CI); results to benchmarks/results/meta_<preset>.json.

    python benchmarks/chapter4_meta.py --only protonet_glyphs maml_glyphs maml_fo_glyphs
    python benchmarks/chapter4_meta.py --only protonet_cross maml_cross maml20_cross
    python benchmarks/chapter4_meta.py --only tune_maml tune_beta_vae    # the two 12-trial Tune sweeps
    python benchmarks/chapter4_meta.py --only protonet_hand pretrain_hand maml_hand    # handwriting bars
    python benchmarks/chapter4_meta.py --only protonet_hand40_20k --resume runs/bench_protonet_hand40_20k__0__<t>
    python benchmarks/write_results.py
Each preset equals `python jobs/meta.py --ray.num-workers 0 <flags>` (printed in the JSON as `command`).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "platform"))

import torch  # noqa: E402

from genlab.core.rundir import make_run_dir  # noqa: E402
from genlab.core.runtime import LocalRuntime  # noqa: E402
from genlab.meta import FewShotDataConfig, MetaConfig  # noqa: E402
from genlab.meta.train import train  # noqa: E402

PROTO = MetaConfig(algo="protonet", n_way=20, k_shot=1, n_query=5, episodes=3000, eval_every=500,
                   test_tasks=("5w1s", "5w5s", "20w1s"))
MAML = MetaConfig(algo="maml", n_way=5, k_shot=1, n_query=5, tasks_per_batch=8, episodes=2000, eval_every=250,
                  val_episodes=100, test_tasks=("5w1s",))
CROSS = FewShotDataConfig(benchmark="omniglot_cross")
PRESETS = {
    "protonet_glyphs": (PROTO, "--train.n-way 20 --train.n-query 5"),
    "maml_glyphs": (MAML, "--train.algo maml --train.n-query 5 --train.tasks-per-batch 8 --train.episodes 2000"),
    "maml_fo_glyphs": (replace(MAML, first_order=True), "... maml_glyphs flags ... --train.first-order"),
    "protonet_cross": (replace(PROTO, data=CROSS, test_tasks=("5w1s", "20w1s")),
                       "--train.data.benchmark omniglot_cross --train.n-way 20 --train.n-query 5"),
    "maml_cross": (replace(MAML, data=CROSS), "--train.algo maml --train.data.benchmark omniglot_cross ..."),
    "maml20_cross": (replace(MAML, data=CROSS, n_way=20, tasks_per_batch=4, episodes=600, test_tasks=("20w1s",)),
                     "--train.algo maml --train.n-way 20 --train.tasks-per-batch 4 --train.episodes 600 ..."),
}
# Handwriting: what each change does to protonet_cross at its budget (3000 updates, validated once at the end)
CROSS_FLAGS = "--train.data.benchmark omniglot_cross --train.n-way 20 --train.n-query 5 --train.eval-every 3000"
ONE_LOOK = replace(PROTO, data=CROSS, test_tasks=("5w1s", "20w1s"), eval_every=3000)
MIX = replace(CROSS, handwritten_fraction=0.5)
HAND = replace(MIX, glyph_style="strokes")  # every change that paid
ABLATIONS = {
    "cross_mix50": (replace(ONE_LOOK, data=MIX), f"{CROSS_FLAGS} --train.data.handwritten-fraction 0.5"),
    "cross_mix50_aug": (replace(ONE_LOOK, data=MIX, augment=True),
                        f"{CROSS_FLAGS} --train.data.handwritten-fraction 0.5 --train.augment"),
    "cross_hand_only_aug": (replace(ONE_LOOK, data=replace(CROSS, handwritten_fraction=1.0), augment=True),
                            f"{CROSS_FLAGS} --train.data.handwritten-fraction 1 --train.augment"),
    "cross_strokes_mix50_aug": (replace(ONE_LOOK, data=HAND, augment=True),
                                f"{CROSS_FLAGS} --train.data.handwritten-fraction 0.5 --train.augment "
                                "--train.data.glyph-style strokes"),
    "pretrain_cross_strokes_mix50_aug": (replace(ONE_LOOK, algo="pretrain", data=HAND, augment=True),
                                         f"--train.algo pretrain {CROSS_FLAGS} --train.data.handwritten-fraction 0.5 "
                                         "--train.augment --train.data.glyph-style strokes"),
}
PRESETS |= ABLATIONS
# The handwriting bars, 10k updates: hand-drawn episodes only, warped (the best at 3000 updates above, chosen
# before these ran); beside it the stroke glyphs in a quarter of the episodes
HAND_ONLY = replace(CROSS, handwritten_fraction=1.0)
HAND_FLAGS = "--train.data.benchmark omniglot_cross --train.data.handwritten-fraction 1 --train.augment"
LONG = replace(PROTO, augment=True, episodes=10000, eval_every=1000, test_tasks=("5w1s", "20w1s"))
LONG_FLAGS = "--train.n-way 20 --train.n-query 5 --train.episodes 10000 --train.eval-every 1000"
PRESETS |= {
    "protonet_hand": (replace(LONG, data=HAND_ONLY), f"{HAND_FLAGS} {LONG_FLAGS}"),
    "protonet_hand_strokes75": (replace(LONG, data=replace(HAND, handwritten_fraction=0.75)),
                                "--train.data.benchmark omniglot_cross --train.data.handwritten-fraction 0.75 "
                                f"--train.data.glyph-style strokes --train.augment {LONG_FLAGS}"),
    "pretrain_hand": (replace(LONG, algo="pretrain", data=HAND_ONLY),
                      f"--train.algo pretrain {HAND_FLAGS} {LONG_FLAGS}"),
    # the 5-way bar missed at 95.8% above: twice the ways per training episode (Snell et al. trained Omniglot
    # 60-way), the same images per update otherwise; tested plain and with 8 warps averaged (fixed before the run)
    "protonet_hand40": (replace(LONG, data=HAND_ONLY, n_way=40, test_augment=8),
                        f"{HAND_FLAGS} {LONG_FLAGS.replace('n-way 20', 'n-way 40')} --train.test-augment 8"),
    # 96.88% with TTA above, 0.12 short: twice the updates (3k -> 10k gave +1.1 points), all else fixed
    "protonet_hand40_20k": (replace(LONG, data=HAND_ONLY, n_way=40, test_augment=8, episodes=20000, eval_every=2000),
                            f"{HAND_FLAGS} {LONG_FLAGS.replace('n-way 20', 'n-way 40')} --train.test-augment 8"
                            .replace("episodes 10000 --train.eval-every 1000",
                                     "episodes 20000 --train.eval-every 2000")),
    "maml_hand": (replace(MAML, data=HAND_ONLY, augment=True), f"--train.algo maml {HAND_FLAGS} --train.n-query 5 "
                  "--train.tasks-per-batch 8 --train.episodes 2000"),
}
# 97.21% at 5-way above, the lower end of its interval under 97%: the same run from another seed (the test
# episodes are the same: they are drawn from their own seed)
PRESETS |= {
    "protonet_hand40_20k_seed1": (replace(PRESETS["protonet_hand40_20k"][0], seed=1),
                                  PRESETS["protonet_hand40_20k"][1] + " --train.seed 1"),
}

# The final model, scored once (issue 34): seed 2's 600 test episodes scored the 10k, 20k and seed-1 models and the
# "mean of two seeds" rule was set after seed 0's number, so they are validation now. The 20k preset trained again
# (its checkpoint did not outlive its session), tested once on episodes of a seed no run was scored on, fixed
# here before the run; seed 2's episodes are scored too, as validation (do they reproduce the earlier run?).
FRESH_TEST_SEED = 20261207
PRESETS |= {
    "protonet_hand40_20k_final": (replace(PRESETS["protonet_hand40_20k"][0], test_seed=FRESH_TEST_SEED),
                                  PRESETS["protonet_hand40_20k"][1] + f" --train.test-seed {FRESH_TEST_SEED}"),
}
VALIDATION_SEEDS = {"protonet_hand40_20k_final": 2}


SWEEPS = {"tune_maml": "python jobs/tune_maml.py", "tune_beta_vae": "python jobs/tune_beta_vae.py"}


def run_sweep(name: str, storage: str) -> None:
    """The job as a user runs it (12 trials, 2 at a time, best config trained to a final checkpoint)."""
    import subprocess

    t0 = time.time()
    resume = ["--sweep.resume"] if (Path(storage) / f"bench_{name}" / "tuner.pkl").exists() else []
    subprocess.run([sys.executable, str(HERE.parent / "jobs" / f"{name}.py"), "--sweep.storage", storage,
                    "--sweep.name", f"bench_{name}", *resume], check=True)
    sweep = json.loads((Path(storage) / f"bench_{name}" / "sweep.json").read_text())
    final = Path(storage) / f"bench_{name}" / "final.json"  # the best config's final run (the only test look)
    if final.exists():
        sweep["final"] = json.loads(final.read_text())
    out = {"preset": name, "command": SWEEPS[name], "date": time.strftime("%Y-%m-%d"),
           "machine": f"{platform.node()}, 2 cores, CPU only", "wall_s": time.time() - t0, **sweep}
    (HERE / "results" / f"{name}.json").write_text(json.dumps(out, indent=1, default=str) + "\n")
    print(f"{name}: {len(sweep['trials'])} trials, best {sweep['metric']} = {sweep['best'][sweep['metric']]:.4g}")


def data_stats() -> None:
    """What the handwriting notes cite: how many training classes each source gives omniglot_cross, and how
    much ink (mean pixel in [0, 1] at 28 px) filled glyphs, stroke glyphs and hand-drawn letters carry."""
    from genlab.meta.data import load_splits

    filled, strokes = (load_splits(replace(CROSS, glyph_style=style)) for style in ("filled", "strokes"))
    ink = lambda d: float(d.images.float().mean() / 255)  # noqa: E731
    out = {"preset": "data_stats", "command": "python benchmarks/chapter4_meta.py --only data_stats",
           "date": time.strftime("%Y-%m-%d"), "train_classes": {k: filled[f"train_{k}"].num_classes
                                                                for k in ("glyphs", "handwritten")},
           "ink": {"glyphs_filled": ink(filled["train_glyphs"]), "glyphs_strokes": ink(strokes["train_glyphs"]),
                   "handwritten_train": ink(filled["train_handwritten"]), "handwritten_test": ink(filled["test"])}}
    out["handwritten_share_of_classes"] = out["train_classes"]["handwritten"] / sum(out["train_classes"].values())
    (HERE / "results" / "meta_data_stats.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out))


def validation_scores(cfg: MetaConfig, run_dir: Path, seed: int) -> dict:
    """The final checkpoint on `seed`'s episodes of the held-out alphabets (what earlier runs called test)."""
    from genlab.core.checkpoint import find_latest_checkpoint, load_model
    from genlab.meta.data import load_splits
    from genlab.meta.train import test_accuracy

    learner = load_model(find_latest_checkpoint(run_dir))
    scores = test_accuracy(replace(cfg, test_seed=seed), learner, load_splits(cfg.data)["test"])
    return {"seed": seed, **{k.replace("test/", "val/"): v for k, v in scores.items()}}


def run(name: str, storage: str, threads: int, resume: str = "") -> None:
    if name in SWEEPS:
        return run_sweep(name, storage)
    if name == "data_stats":
        return data_stats()
    torch.set_num_threads(threads)
    cfg, flags = PRESETS[name]
    run_dir = Path(resume) if resume else make_run_dir(f"bench_{name}", cfg.seed, root=storage, config=cfg)
    t0 = time.time()
    metrics = train(cfg, LocalRuntime(run_dir, {}, seed=cfg.seed))
    out = {"preset": name, "command": f"python jobs/meta.py --ray.num-workers 0 {flags}",
           "date": time.strftime("%Y-%m-%d"), "threads": threads,
           "machine": f"{platform.node()}, 2 cores, CPU only", "wall_s": time.time() - t0, "run_dir": str(run_dir),
           "config": json.loads((run_dir / "config.json").read_text()), "metrics": metrics}
    if name in VALIDATION_SEEDS:  # the old test episodes, scored on the final checkpoint as validation
        out["validation_episodes"] = validation_scores(cfg, run_dir, VALIDATION_SEEDS[name])
    if resume:  # wall_s is this process's share: the epochs' times add up every process's (one row per epoch)
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
        out |= {"resumed": True, "epochs_s_all_processes": sum(r.get("perf/epoch_s", 0) for r in rows)}
    (HERE / "results" / f"meta_{name}.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"{name}: {json.dumps({k: round(v, 4) for k, v in metrics.items() if k.startswith('test/')})} "
          f"in {out['wall_s'] / 60:.1f} min")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=[*PRESETS, *SWEEPS, "data_stats"],
                        default=[*PRESETS, *SWEEPS, "data_stats"])
    parser.add_argument("--storage", default="runs")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--resume", default="", help="the run directory of an interrupted run of the one --only "
                        "preset: training continues from its last checkpoint")
    args = parser.parse_args()
    if args.resume and (len(args.only) != 1 or not Path(args.resume, "config.json").exists()):
        parser.error("--resume takes the run directory (with its config.json) of the one preset given to --only")
    for preset in args.only:
        run(preset, args.storage, args.threads, args.resume)
