"""GPU readiness: each generative job for a short budget on the GPU, then its GPU checkpoint resumed on the CPU.

    bash scripts/gpu_check.sh                          # on a machine with a CUDA GPU (~5 min)
    bash scripts/gpu_check.sh --dry-run --workers 0    # the same flow on the CPU, in-process (CI runs this)

For every job (ae, vae, gan, ddpm, clip): its default model and batch size, `--steps` steps under Ray Train with
`--ray.use-gpu` (bf16 autocast there), stopped after the first epoch with a checkpoint; then the same run resumed
for one more epoch on the CPU (`--ray.resume`, no GPU). Reports samples/s and peak GPU memory per job, and whether
the resume worked; writes benchmarks/results/gpu_check.json (`--out` moves it).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JOBS = {  # job -> (script, harness loop)
    "ae": ("jobs/ae.py", "genlab.autoencoders.train:train"),
    "vae": ("jobs/vae.py", "genlab.autoencoders.train:train"),
    "gan": ("jobs/gan.py", "genlab.gan.train:train"),
    "ddpm": ("jobs/ddpm.py", "genlab.diffusion.train:train"),
    "clip": ("jobs/clip.py", "genlab.multimodal.train:train"),
}
SMOKE = {"ae": "genlab.autoencoders.config", "vae": "genlab.autoencoders.config", "gan": "genlab.gan.config",
         "ddpm": "genlab.diffusion.config", "clip": "genlab.multimodal.config"}


def job_config(name: str, steps: int, dry_run: bool):
    """The job's default config with smoke-scale evaluation, `steps` steps per epoch and two epochs."""
    script, _ = JOBS[name]
    spec = importlib.util.spec_from_file_location(f"gpu_check_{name}", ROOT / script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    default = module.Args().train
    smoke = importlib.import_module(SMOKE[name]).smoke_config(default)
    batch = smoke.batch_size if dry_run else default.batch_size  # the real batch on the GPU: realistic samples/s
    return dataclasses.replace(smoke, epochs=2, max_steps_per_epoch=steps, batch_size=batch)


def check_job(name: str, steps: int, workers: int, dry_run: bool, storage: Path) -> dict:
    from genlab.core.checkpoint import find_latest_checkpoint, load_train_state
    from genlab.distributed.jobs import run_training_job
    from genlab.distributed.trainer import RayConfig

    cfg = job_config(name, steps, dry_run)
    _, loop = JOBS[name]
    gpu = RayConfig(num_workers=workers, use_gpu=not dry_run, storage=str(storage), stop_after_s=1e-9)
    t0 = time.perf_counter()
    run_dir, first = run_training_job(cfg.run_name(), loop, cfg, gpu, cfg.dataset)  # stops after epoch 1
    row = {"job": name, "device": "cuda" if not dry_run else "cpu", "batch_size": cfg.batch_size, "steps": steps,
           "wall_s": time.perf_counter() - t0, "run_dir": str(run_dir),
           "samples_per_s": next((v for k, v in first.items() if k.startswith("perf/") and k.endswith("_per_s")),
                                 None),
           "gpu_peak_mem_gb": first.get("perf/gpu_peak_mem_gb")}
    saved = find_latest_checkpoint(run_dir)
    if saved is None or load_train_state(saved)["epoch"] != 1:
        raise RuntimeError(f"{name}: no epoch-1 checkpoint in {run_dir}")
    cpu = dataclasses.replace(gpu, use_gpu=False, stop_after_s=0, resume=str(run_dir))
    resumed_dir, resumed = run_training_job(cfg.run_name(), loop, cfg, cpu, cfg.dataset)  # epoch 2 on the CPU
    row["resumed_on_cpu"] = (resumed_dir == run_dir and resumed.get("epoch") == 2
                             and resumed.get("step") == 2 * steps)
    row["final"] = {k: v for k, v in resumed.items() if k.startswith(("eval/", "test/"))}
    print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items() if k != "final"}),
          flush=True)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", nargs="+", default=list(JOBS), choices=list(JOBS))
    parser.add_argument("--steps", type=int, default=200, help="steps per epoch (dry run: use a few)")
    parser.add_argument("--workers", type=int, default=1,
                        help="Ray Train workers, one GPU each (0: in this process, no Ray)")
    parser.add_argument("--dry-run", action="store_true", help="run the same flow on the CPU (no GPU needed)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "gpu_check.json"))
    args = parser.parse_args(argv)

    import torch

    if not args.dry_run and not torch.cuda.is_available():
        parser.error("no CUDA GPU visible to torch here: run on a GPU machine, or pass --dry-run for the CPU flow")
    storage = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    rows, failed = [], []
    for name in args.jobs:
        try:
            rows.append(check_job(name, args.steps, args.workers, args.dry_run, storage))
        except Exception as err:  # report every job, then fail
            failed.append(name)
            print(f"!! {name}: {type(err).__name__}: {err}", flush=True)
    device = "cpu (dry run)" if args.dry_run else torch.cuda.get_device_name(0)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "device": device,
                                          "command": " ".join(["scripts/gpu_check.sh", *(argv or sys.argv[1:])]),
                                          "rows": rows, "failed": failed}, indent=2) + "\n")
    print(f"\n{'job':6s} {'samples/s':>10s} {'peak GB':>8s}  resumed on CPU   ({device})")
    for r in rows:
        mem = f"{r['gpu_peak_mem_gb']:.2f}" if r["gpu_peak_mem_gb"] is not None else "-"
        print(f"{r['job']:6s} {r['samples_per_s'] or 0:10.0f} {mem:>8s}  {r['resumed_on_cpu']}")
    print(f"wrote {args.out}")
    bad = failed + [r["job"] for r in rows if not r["resumed_on_cpu"]]
    if bad:
        print(f"FAILED: {', '.join(bad)}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
