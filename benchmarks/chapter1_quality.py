"""Chapter 5.1/5.2 quality bars: train each reference config to completion and record its test metrics.

    python benchmarks/chapter1_quality.py --only ae_mlp ae_conv dae_conv vae_conv fld

Runs in-process on the local runtime (Ray's overhead is measured by benchmarks/ray_overhead.py); each result is
written to benchmarks/results/<name>.json with the config, the metrics, the machine and the date.
"""

from __future__ import annotations

import argparse
import json
import platform as std_platform
import sys
import time
from pathlib import Path

import torch

from genlab.autoencoders import ModelConfig, TrainConfig
from genlab.autoencoders.train import train
from genlab.core.config import to_dict
from genlab.core.rundir import make_run_dir
from genlab.core.runtime import LocalRuntime
from genlab.data import load_dataset
from genlab.eval.fld_reference import reference_dir, train_reference_classifier
from results_common import command  # noqa: E402

RESULTS = Path(__file__).parent / "results"

PRESETS = {
    "ae_mlp": TrainConfig(model=ModelConfig(kind="ae", arch="mlp", latent_dim=32), epochs=30),
    "ae_conv": TrainConfig(model=ModelConfig(kind="ae", arch="conv", latent_dim=32), epochs=30),
    "dae_conv": TrainConfig(model=ModelConfig(kind="ae", arch="conv", latent_dim=32), objective="denoising",
                            epochs=20),
    "sae_mlp": TrainConfig(model=ModelConfig(kind="ae", arch="mlp", latent_dim=32), objective="sparse", epochs=20),
    "vae_mlp": TrainConfig(model=ModelConfig(kind="vae", arch="mlp", latent_dim=20, hidden=(400,)), epochs=30,
                           iw_k=1000),
    "vae_conv": TrainConfig(model=ModelConfig(kind="vae", arch="conv", latent_dim=32), epochs=80, iw_k=1000),
}


def machine() -> str:
    cpu = std_platform.processor() or std_platform.machine()
    return f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def run_preset(name: str, cfg: TrainConfig, train_set, test_set) -> dict:
    run_dir = make_run_dir(f"bench_{name}", cfg.seed, config=cfg)
    t0 = time.time()
    metrics = train(cfg, LocalRuntime(run_dir, {"train": train_set}, seed=cfg.seed), test_set)
    return {"name": name, "metrics": metrics, "wall_s": time.time() - t0, "run_dir": str(run_dir),
            "config": to_dict(cfg)}


def run_fld(train_set, test_set) -> dict:
    t0 = time.time()
    out = train_reference_classifier(train_set, test_set, reference_dir("mnist"), progress=False)
    return {"name": "fld", "metrics": out, "wall_s": time.time() - t0}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", default=[*PRESETS, "fld"], choices=[*PRESETS, "fld"])
    parser.add_argument("--epochs", type=int, default=0, help="override every preset's epochs (0 = preset)")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    train_set, test_set = load_dataset("mnist", "train"), load_dataset("mnist", "test")
    RESULTS.mkdir(exist_ok=True)
    for name in args.only:
        if name == "fld":
            result = run_fld(train_set, test_set)
        else:
            cfg = PRESETS[name]
            if args.epochs:
                cfg.epochs = args.epochs
            result = run_preset(name, cfg, train_set, test_set)
        result |= {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "command": command()}
        (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
        print(json.dumps({"name": name, **{k: v for k, v in result["metrics"].items() if "/" not in k or
                                           k.startswith("eval/")}}, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
