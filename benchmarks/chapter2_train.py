"""Chapter 5.3/5.4 reference trainings (DDPM and DCGAN): train each preset to completion on the local runtime.

    python benchmarks/chapter2_train.py --only ddpm
    python benchmarks/chapter2_train.py --only dcgan --resume runs/bench_dcgan__0__<time>
    python benchmarks/chapter2_train.py --only ddpm_uncond --stop-after-s 3000   # then --resume <its run dir>

The heavy sampling evaluations run afterwards on the checkpoints (benchmarks/chapter2_sampling.py,
jobs/compare.py). Writes benchmarks/results/train_<name>.json (config, metrics, wall time, machine, date).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from genlab.core.config import to_dict
from genlab.core.rundir import make_run_dir
from genlab.core.runtime import LocalRuntime
from genlab.data import load_dataset
from genlab.diffusion import DiffusionConfig, UNetConfig
from genlab.diffusion.train import train as train_ddpm

sys.path.insert(0, str(Path(__file__).parent))
from chapter1_quality import RESULTS, machine  # noqa: E402
from results_common import command  # noqa: E402


UNCOND_CHANNELS = 32


def preset(name: str):
    if name == "ddpm":
        # conditional with label dropout: one network gives unconditional, conditional and guided samples
        return (DiffusionConfig(unet=UNetConfig(channels=16, channel_mults=(1, 2, 4), num_classes=10), epochs=15,
                                fld_samples=0, progress=False), train_ddpm)
    if name == "ddpm_uncond":
        # the unconditional bar's own model: every step trains the unconditional task (the conditional model's
        # null class saw 20% of its steps), wider at full resolution, twice the epochs
        return (DiffusionConfig(unet=UNetConfig(channels=UNCOND_CHANNELS, channel_mults=(1, 2, 2)), epochs=30,
                                ema_decay=0.9995, fld_samples=0, progress=True), train_ddpm)
    from genlab.gan import GANConfig, GANTrainConfig
    from genlab.gan.train import train as train_gan

    return {
        # the seed's DCGAN; the checkpoint keeps raw and EMA generator weights, both are evaluated
        "dcgan": (GANTrainConfig(epochs=8, ema_decay=0.999, fld_samples=0, progress=False), train_gan),
        "dcgan_cond": (GANTrainConfig(model=GANConfig(num_classes=10), epochs=8, ema_decay=0.999, fld_samples=0,
                                      progress=False),
                       train_gan),
    }[name]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", required=True, choices=["ddpm", "ddpm_uncond", "dcgan", "dcgan_cond"])
    parser.add_argument("--resume", default="", help="a run directory of the same preset to continue")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                        help="'bf16': CPU autocast (pays where the CPU has AMX or AVX-512 BF16)")
    parser.add_argument("--stop-after-s", type=float, default=0,
                        help="end (checkpointed) after the first epoch past this many seconds; --resume continues")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg, loop = preset(args.only)
    train_set, test_set = load_dataset(cfg.dataset, "train"), load_dataset(cfg.dataset, "test")
    run_dir = Path(args.resume) if args.resume else make_run_dir(f"bench_{args.only}", cfg.seed, config=cfg)
    t0 = time.time()
    rt = LocalRuntime(run_dir, {"train": train_set}, seed=cfg.seed, stop_after_s=args.stop_after_s,
                      precision=args.precision)
    metrics = loop(cfg, rt, test_set)
    from genlab.eval.compare import train_wall_s

    result = {"name": args.only, "metrics": metrics, "wall_s": time.time() - t0, "run_dir": str(run_dir),
              "epochs_wall_s": train_wall_s(run_dir),  # every epoch, across resumptions
              "config": to_dict(cfg), "date": time.strftime("%Y-%m-%d"), "machine": machine(),
              "command": command(), "resumed": bool(args.resume)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"train_{args.only}.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(json.dumps(result["metrics"], default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
