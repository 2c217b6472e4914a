"""Chapter 5.3/5.4 measurements on the trained checkpoints (benchmarks/chapter2_train.py), plus throughput.

    python benchmarks/chapter2_sampling.py --ddpm runs/bench_ddpm__0__<t> --only samplers guidance
    python benchmarks/chapter2_sampling.py --gan runs/bench_dcgan__0__<t> --only dcgan
    python benchmarks/chapter2_sampling.py --only throughput
    python benchmarks/chapter2_sampling.py --only compare --vae runs/bench_vae_conv__0__<t> --gan ... --ddpm ...

samplers:   DDIM-50 vs DDPM-1000 on the same EMA model, N samples each (default 2000): wall time and FLD.
            `--shards 2 --shard 0|1` splits the N samples over two 1-thread processes (then `samplers_merge`).
timing:     both samplers timed back to back on N samples in one process (run on an idle machine).
guidance:   class-balanced guided samples at several scales: how often the FLD classifier agrees with the label.
dcgan:      10k samples of the raw and the EMA generator: FLD ratio, precision/recall, class entropy.
compare:    jobs/compare.py on the VAE, DCGAN and DDPM runs (N=10k each); its table, CSV and figure are copied
            into benchmarks/results/.
throughput: fp32 GEMM FLOP/s of this machine, then DDPM and DCGAN training steps (FLOPs counted by torch's
            FlopCounterMode) as a fraction of it, all in one process.
table:      FLD ratio vs number of steps (--steps, default 10 20 50 100) per sampler (--table-samplers) and
            DDPM-1000, one model, one seed: N = --n per row, --bar-n for the 50-step rows (where the bars are
            decided). Resumable: each row is written to the JSON as it finishes and kept for the same checkpoint.
Each part writes benchmarks/results/<part>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from genlab.core.checkpoint import find_latest_checkpoint, load_model
from genlab.diffusion import NoiseSchedule, SamplerConfig, UNet, sample
from genlab.diffusion.evaluate import balanced_labels, load_for_sampling
from genlab.eval.fld_reference import fld_of_samples
from genlab.eval.sample_quality import sample_quality
from genlab.gan.evaluate import evaluate_generator

sys.path.insert(0, str(Path(__file__).parent))
from chapter1_quality import RESULTS, machine  # noqa: E402
from results_common import command  # noqa: E402


def _save(name: str, result: dict) -> None:
    result |= {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "command": command()}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(json.dumps(result, default=float)[:2000])


def _timed_sample(model, schedule, n, sampler, **kw):
    t0 = time.perf_counter()
    images, _ = sample(model, schedule, n, sampler, progress=True, **kw)
    return images, time.perf_counter() - t0


SHARD_DIR = Path("runs") / "bench_samplers"
SAMPLERS = {"ddim-50": SamplerConfig("ddim", steps=50), "ddpm-1000": SamplerConfig("ddpm")}


def part_samplers(run: str, n: int, shard: int = 0, shards: int = 1) -> None:
    """Both samplers on the same model and seeds. With shards > 1 this process does its n / shards samples
    (seed = shard) and stores them; `samplers_merge` then scores all of them together."""
    model, schedule, ckpt = load_for_sampling(run)
    out = {"checkpoint": str(ckpt), "threads": torch.get_num_threads(), "images": {}, "seconds": {}}
    for name, sampler in SAMPLERS.items():
        out["images"][name], out["seconds"][name] = _timed_sample(model, schedule, n // shards, sampler, seed=shard)
    SHARD_DIR.mkdir(parents=True, exist_ok=True)
    torch.save(out, SHARD_DIR / f"shard{shard}of{shards}.pt")
    if shards == 1:
        part_samplers_merge()


def part_samplers_merge() -> None:
    """Score the stored shards: FLD of all samples per sampler; time = the shards' summed sampling seconds."""
    parts = [torch.load(p, weights_only=True) for p in sorted(SHARD_DIR.glob("shard*.pt"))]
    if not parts:
        raise SystemExit(f"no shards in {SHARD_DIR}: run --only samplers first")
    rows = {}
    for name in SAMPLERS:
        images = torch.cat([p["images"][name] for p in parts])
        seconds = sum(p["seconds"][name] for p in parts)
        rows[name] = {"seconds": seconds, "samples_per_s": len(images) / seconds, **sample_quality(images)}
    n = len(torch.cat([p["images"]["ddim-50"] for p in parts]))
    speedup = rows["ddpm-1000"]["seconds"] / rows["ddim-50"]["seconds"]
    fld_rel = abs(rows["ddim-50"]["fld"] - rows["ddpm-1000"]["fld"]) / rows["ddpm-1000"]["fld"]
    _save("ddpm_samplers", {"checkpoint": parts[0]["checkpoint"], "n": n, "shards": len(parts),
                            "threads_per_shard": parts[0]["threads"], "samplers": rows, "speedup": speedup,
                            "fld_rel_diff": fld_rel})


TABLE_SAMPLERS = {  # name -> sampler (steps set per row)
    "ddim": SamplerConfig("ddim"), "ddim-trailing": SamplerConfig("ddim", spacing="trailing"),
    "ddim-eta1": SamplerConfig("ddim", eta=1.0), "dpm++2m": SamplerConfig("dpm++2m"),
    "dpm++2m-trailing": SamplerConfig("dpm++2m", spacing="trailing"),
}


def part_table(run: str, n: int, bar_n: int, steps: list[int], samplers: list[str], ddpm: bool = True) -> None:
    """FLD ratio per (sampler, steps) on one model and one seed, DDPM-1000 last (`ddpm`); rows kept across
    restarts."""
    import dataclasses

    model, schedule, ckpt = load_for_sampling(run)
    path = RESULTS / "ddpm_sampler_table.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    rows = saved.get("rows", {}) if saved.get("checkpoint") == str(ckpt) else {}
    plan = [(f"{name}-{k}", dataclasses.replace(TABLE_SAMPLERS[name], steps=k), bar_n if k == 50 else n)
            for name in samplers for k in steps] + ([("ddpm-1000", SamplerConfig("ddpm"), n)] if ddpm else [])
    for key, sampler, size in plan:
        if key in rows and rows[key]["n"] >= size:
            continue
        images, seconds = _timed_sample(model, schedule, size, sampler, seed=0)
        q = sample_quality(images)
        rows[key] = {"n": size, "seconds": seconds, "threads": torch.get_num_threads(),
                     **{k: q[k] for k in ("fld", "fld_ratio", "precision", "recall", "class_entropy_frac")}}
        if size > n:  # an FLD is biased by N: the first n samples (the same seeds) compare with the n-sample rows
            rows[key]["fld_first_n"] = fld_of_samples(images[:n])["fld"]
        _save("ddpm_sampler_table", {"checkpoint": str(ckpt), "n": n, "rows": rows})
    fifty = [(r.get("fld_first_n", r["fld"]), k) for k, r in rows.items() if k.endswith("-50")]
    if fifty and "ddpm-1000" in rows:
        best, reference = min(fifty), rows["ddpm-1000"]["fld"]
        _save("ddpm_sampler_table", {"checkpoint": str(ckpt), "n": n, "rows": rows, "best_50": best[1],
                                     "best_50_fld_rel_to_ddpm1000": (best[0] - reference) / reference})


def part_timing(run: str, n: int) -> None:
    """Wall time of both samplers on the same n samples in one process, nothing else running: the speed-up."""
    model, schedule, ckpt = load_for_sampling(run)
    seconds = {name: _timed_sample(model, schedule, n, sampler, seed=0)[1] for name, sampler in SAMPLERS.items()}
    _save("sampler_timing", {"checkpoint": str(ckpt), "n": n, "threads": torch.get_num_threads(),
                             "seconds": seconds, "speedup": seconds["ddpm-1000"] / seconds["ddim-50"]})


def part_guidance(run: str, n: int, scales: list[float]) -> None:
    model, schedule, ckpt = load_for_sampling(run)
    labels = balanced_labels(n)
    rows = {}
    for w in scales:
        images, seconds = _timed_sample(model, schedule, n, SamplerConfig("ddim", steps=50, guidance=w),
                                        labels=labels, seed=1)
        q = sample_quality(images, requested=labels)
        rows[f"{w:g}"] = {"seconds": seconds, "class_agreement": q["class_agreement"], "fld": q["fld"],
                          "fld_ratio": q["fld_ratio"], "precision": q["precision"], "recall": q["recall"]}
    _save("ddpm_guidance", {"checkpoint": str(ckpt), "n": n, "sampler": "ddim-50", "scales": rows})


def part_dcgan(run: str, n: int) -> None:
    ckpt = find_latest_checkpoint(run)
    rows = {}
    for ema in (False, True):
        if ema and not (ckpt / "ema.safetensors").exists():
            continue
        gan = load_model(ckpt, ema=ema)
        q = evaluate_generator(gan, n, seed=0)
        rows["ema" if ema else "raw"] = q
    _save(f"{Path(run).name.split('__')[0].removeprefix('bench_')}_quality", {"checkpoint": str(ckpt), "n": n,
                                                                              "generators": rows})


def part_compare(vae: str, gan: str, ddpm: str, n: int) -> None:
    import importlib.util
    import shutil

    spec = importlib.util.spec_from_file_location("compare_job", Path(__file__).parents[1] / "jobs" / "compare.py")
    job = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = job  # dataclasses look their module up there
    spec.loader.exec_module(job)
    out = job.main(job.CompareConfig(vae=vae, gan=gan, ddpm=ddpm, n=n))
    for name in ("comparison.csv", "comparison.png"):
        shutil.copy(out / name, RESULTS / name)
    _save("compare", {"n": n, "rows": json.loads((out / "comparison.json").read_text()), "out": str(out)})


def gemm_flops(size: int = 2048, reps: int = 20) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * size ** 3 * reps / (time.perf_counter() - t0)


def _step_throughput(step, reps: int) -> dict:
    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    step()
    t0 = time.perf_counter()
    for _ in range(reps):
        step()
    seconds = (time.perf_counter() - t0) / reps
    return {"flops_per_step": flops, "step_s": seconds, "flops_per_s": flops / seconds}


def part_throughput(reps: int) -> None:
    from genlab.diffusion.train import diffusion_loss
    from genlab.gan import GAN, GANConfig
    from genlab.gan.losses import discriminator_loss, generator_loss

    sys.path.insert(0, str(Path(__file__).parent))
    from chapter2_train import preset

    gemm = gemm_flops()
    ddpm_cfg = preset("ddpm")[0]
    unet = UNet(ddpm_cfg.unet)
    schedule = NoiseSchedule(ddpm_cfg.schedule)
    opt = torch.optim.Adam(unet.parameters())
    x = torch.rand(ddpm_cfg.batch_size, 1, 28, 28) * 2 - 1
    y = torch.randint(0, 10, (ddpm_cfg.batch_size,))

    def ddpm_step():
        loss = diffusion_loss(unet, schedule, x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    gan = GAN(GANConfig())
    opt_g, opt_d = torch.optim.Adam(gan.generator.parameters()), torch.optim.Adam(gan.discriminator.parameters())
    xr = torch.rand(64, 1, 28, 28) * 2 - 1

    def gan_step():
        fake = gan.generator(torch.randn(64, 100))
        loss_d = discriminator_loss(gan.discriminator(xr), gan.discriminator(fake.detach()))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = generator_loss(gan.discriminator(fake))
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()

    rows = {"ddpm (batch 128)": _step_throughput(ddpm_step, reps),
            "dcgan (batch 64)": _step_throughput(gan_step, reps)}
    for r in rows.values():
        r["fraction_of_gemm"] = r["flops_per_s"] / gemm
    _save("throughput", {"gemm_flops_per_s": gemm, "gemm": "2048x2048 fp32 matmul", "threads": torch.get_num_threads(),
                         "steps": rows})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", required=True, choices=["samplers", "samplers_merge", "timing", "guidance", "dcgan", "throughput",
                                                          "compare", "table"])
    parser.add_argument("--shard", type=int, default=0, help="samplers: this process's shard (seed)")
    parser.add_argument("--shards", type=int, default=1, help="samplers: processes sharing the N samples")
    parser.add_argument("--vae", default="", help="VAE run directory (compare)")
    parser.add_argument("--ddpm", default="", help="DDPM run directory (samplers, guidance)")
    parser.add_argument("--gan", default="", help="DCGAN run directory (dcgan, compare)")
    parser.add_argument("--n", type=int, default=2000, help="samples per sampler / guidance scale")
    parser.add_argument("--gan-n", type=int, default=10_000, help="samples per model (dcgan, compare)")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 3.0], help="guidance scales")
    parser.add_argument("--reps", type=int, default=10, help="timed training steps per model (throughput)")
    parser.add_argument("--bar-n", type=int, default=10_000, help="table: samples of the 50-step rows")
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 20, 50, 100], help="table: sampler steps")
    parser.add_argument("--table-samplers", nargs="+", default=["ddim", "ddim-trailing", "dpm++2m"],
                        choices=sorted(TABLE_SAMPLERS), help="table: samplers (each at every --steps)")
    parser.add_argument("--skip-ddpm", action="store_true", help="table: leave the DDPM-1000 row for later")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    for part in args.only:
        if part in ("samplers", "guidance", "table") and not args.ddpm:
            parser.error(f"--only {part} needs --ddpm RUN_DIR")
        if part == "dcgan" and not args.gan:
            parser.error("--only dcgan needs --gan RUN_DIR")
    if "throughput" in args.only:
        part_throughput(args.reps)
    if "dcgan" in args.only:
        part_dcgan(args.gan, args.gan_n)
    if "guidance" in args.only:
        part_guidance(args.ddpm, args.n, args.scales)
    if "samplers" in args.only:
        part_samplers(args.ddpm, args.n, args.shard, args.shards)
    if "timing" in args.only:
        part_timing(args.ddpm, args.n)
    if "samplers_merge" in args.only:
        part_samplers_merge()
    if "compare" in args.only:
        part_compare(args.vae, args.gan, args.ddpm, args.gan_n)
    if "table" in args.only:
        part_table(args.ddpm, args.n, args.bar_n, args.steps, args.table_samplers, not args.skip_ddpm)
    return 0


if __name__ == "__main__":
    sys.exit(main())
