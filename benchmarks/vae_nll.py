"""Importance-weighted NLL (Burda et al. 2016) of a trained VAE checkpoint on binarised MNIST test images.

    python benchmarks/vae_nll.py runs/bench_vae_conv__0__<time> --k 1000 --images 2000

Reports the mean over images with its standard error; results go to benchmarks/results/vae_nll.json.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from genlab.core.checkpoint import find_latest_checkpoint, load_model
from genlab.core.rundir import read_metrics
from genlab.data import load_dataset
from genlab.eval.likelihood import binarize, iwae_log_likelihood
from results_common import command  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a run directory or checkpoint directory of a VAE")
    parser.add_argument("--k", type=int, default=1000, help="importance samples per image")
    parser.add_argument("--images", type=int, default=10_000, help="first N test images")
    parser.add_argument("--batch-size", type=int, default=50)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    ckpt = find_latest_checkpoint(args.run)
    if ckpt is None:
        raise SystemExit(f"{args.run}: no checkpoint found")
    vae = load_model(ckpt)
    x = binarize(load_dataset("mnist", "test")[0][:args.images])
    torch.manual_seed(0)
    t0 = time.time()
    nll = torch.cat([-iwae_log_likelihood(vae, x[s:s + args.batch_size], args.k)
                     for s in tqdm(range(0, len(x), args.batch_size), desc=f"IW-NLL k={args.k}")])
    result = {"checkpoint": str(ckpt), "k": args.k, "n_images": len(x), "iw_nll_nats": float(nll.mean()),
              "std_error": float(nll.std() / math.sqrt(len(nll))), "wall_s": time.time() - t0,
              "date": time.strftime("%Y-%m-%d"), "command": command()}
    run_dir = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    epochs = [r for r in read_metrics(run_dir / "metrics.jsonl") if "eval/neg_elbo_nats" in r]
    if epochs:  # the training run's own last-epoch numbers, for the record
        result |= {"train_epochs": epochs[-1]["epoch"], "neg_elbo_nats_full_test": epochs[-1]["eval/neg_elbo_nats"]}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "vae_nll.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
