"""Chapter 5.3/5.4 reference trainings (DDPM and DCGAN): train each preset to completion on the local runtime.

    python benchmarks/chapter2_train.py --only ddpm
    python benchmarks/chapter2_train.py --only dcgan --resume runs/bench_dcgan__0__<time>

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


def preset(name: str):
    if name == "ddpm":
        # conditional with label dropout: one network gives unconditional, conditional and guided samples
        return (DiffusionConfig(unet=UNetConfig(channels=16, channel_mults=(1, 2, 4), num_classes=10), epochs=15,
                                fld_samples=0, progress=False), train_ddpm)
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
    parser.add_argument("--only", required=True, choices=["ddpm", "dcgan", "dcgan_cond"])
    parser.add_argument("--resume", default="", help="a run directory of the same preset to continue")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg, loop = preset(args.only)
    train_set, test_set = load_dataset(cfg.dataset, "train"), load_dataset(cfg.dataset, "test")
    run_dir = Path(args.resume) if args.resume else make_run_dir(f"bench_{args.only}", cfg.seed, config=cfg)
    t0 = time.time()
    metrics = loop(cfg, LocalRuntime(run_dir, {"train": train_set}, seed=cfg.seed), test_set)
    from genlab.eval.compare import train_wall_s

    result = {"name": args.only, "metrics": metrics, "wall_s": time.time() - t0, "run_dir": str(run_dir),
              "epochs_wall_s": train_wall_s(run_dir),  # every epoch, across resumptions
              "config": to_dict(cfg), "date": time.strftime("%Y-%m-%d"), "machine": machine(),
              "command": "python " + " ".join(sys.argv), "resumed": bool(args.resume)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"train_{args.only}.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(json.dumps(result["metrics"], default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
