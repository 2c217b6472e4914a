"""Ray Train overhead on one machine: the same VAE loop for a fixed number of steps, run in-process on the local
runtime, under 1 Ray Train worker (both data backends) and under 2 workers, all in one benchmark run.

    python benchmarks/ray_overhead.py --epochs 8

Reports, per setting: the wall time of the whole fit (Ray start-up included), the loop's own time (sum of epoch
times), the data-wait fraction of step time, and the ratios to the local runtime. Results go to
benchmarks/results/ray_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from genlab.autoencoders import ModelConfig, TrainConfig
from genlab.core.rundir import make_run_dir, read_metrics
from genlab.distributed.env import init_ray
from genlab.distributed.trainer import RayConfig, fit
from results_common import command  # noqa: E402

RESULTS = Path(__file__).parent / "results"
LOOP = "genlab.autoencoders.train:train"


def one(name: str, cfg: TrainConfig, ray_cfg: RayConfig, root: Path) -> dict:
    run_dir = make_run_dir(f"overhead-{name}", cfg.seed, root=root, config=cfg)
    t0 = time.perf_counter()
    fit(LOOP, cfg, run_dir, ray_cfg, "mnist")
    wall = time.perf_counter() - t0
    epochs = [r for r in read_metrics(run_dir / "metrics.jsonl") if "perf/epoch_s" in r]
    loop_s = sum(r["perf/epoch_s"] for r in epochs)
    wait = sum(r["perf/data_wait_frac"] * r["perf/epoch_s"] for r in epochs) / loop_s
    steps = epochs[-1]["step"]
    out = {"setting": name, "wall_s": wall, "loop_s": loop_s, "data_wait_frac": wait, "steps": steps,
           "samples_per_s": steps * cfg.batch_size / loop_s, "final_neg_elbo": epochs[-1].get("eval/neg_elbo_nats")}
    print(json.dumps(out), flush=True)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--root", default="runs/bench-overhead")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    cfg = TrainConfig(model=ModelConfig(kind="vae", arch="conv", latent_dim=32), epochs=args.epochs,
                      eval_images=2000, figures=False, progress=False)
    init_ray(num_cpus=2)
    root = Path(args.root)
    rows = [one("local (in-process, 2 threads)", cfg, RayConfig(num_workers=0), root),
            one("ray 1 worker, ray data", cfg, RayConfig(num_workers=1, data_backend="ray"), root),
            one("ray 1 worker, local data", cfg, RayConfig(num_workers=1, data_backend="local"), root),
            one("ray 2 workers, ray data", cfg, RayConfig(num_workers=2, data_backend="ray"), root)]
    base = rows[0]
    for r in rows:
        r["wall_ratio"] = r["wall_s"] / base["wall_s"]
        r["loop_ratio"] = r["loop_s"] / base["loop_s"]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ray_overhead.json").write_text(json.dumps(
        {"date": time.strftime("%Y-%m-%d"), "command": command(), "epochs": args.epochs,
         "steps_per_setting": base["steps"], "rows": rows}, indent=2) + "\n")
    for r in rows:
        print(f"{r['setting']:32s} wall {r['wall_s']:7.1f}s ({r['wall_ratio']:.3f}x)  loop {r['loop_s']:7.1f}s "
              f"({r['loop_ratio']:.3f}x)  data wait {100 * r['data_wait_frac']:.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
