"""The DCGAN paper's 64x64 networks on the offline synthetic faces, a short CPU run: faces emerging epoch by epoch.

    python benchmarks/faces_gan.py                      # trains (jobs/gan.py, ~10 min on 2 cores), then collects
    python benchmarks/faces_gan.py --run runs/dcgan-faces64-ema__0__<time>   # collects an existing run

Writes benchmarks/results/gan_faces64.json (the command, config, final metrics: `eval/fld` is the offline FID
stand-in of genlab.eval.fld, not FID) and gan_faces64_epochs.png (the fixed-noise grid of every epoch, stacked)
next to it.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
COMMAND = ["jobs/gan.py", "--train.dataset", "faces", "--train.epochs", "5", "--train.fld-samples", "2000",
           "--train.ema-decay", "0.99"]


def collect(run_dir: Path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    final = {}
    for record in records:
        final |= record
    grids = sorted((run_dir / "epochs").glob("samples_epoch*.png"))
    fig, axes = plt.subplots(1, len(grids), figsize=(3.2 * len(grids), 4.2), squeeze=False)
    for ax, path in zip(axes[0], grids):
        ax.imshow(plt.imread(path))
        ax.axis("off")
    fig.suptitle("DCGAN 64x64 on the synthetic faces: the same noise after each epoch (EMA generator)")
    fig.tight_layout()
    fig.savefig(HERE / "results" / "gan_faces64_epochs.png", dpi=80)
    out = {"command": "python " + " ".join(COMMAND), "run_dir": str(run_dir), "date": time.strftime("%Y-%m-%d"),
           "machine": f"{platform.node()}, 2 cores, CPU only",
           "config": json.loads((run_dir / "config.json").read_text()),
           "metrics": {k: v for k, v in final.items() if k.startswith(("eval/", "train/", "perf/")) or k == "step"},
           "epoch_s": [r["perf/epoch_s"] for r in records if "perf/epoch_s" in r],
           "note": "eval/fld: Frechet distance in the features of a small classifier trained on the faces' hair "
                   "colour (the offline stand-in for FID); fld_floor: the same between train and test faces"}
    (HERE / "results" / "gan_faces64.json").write_text(json.dumps(out, indent=1, default=float) + "\n")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="", help="an existing run directory of the command above")
    args = parser.parse_args(argv)
    if args.run:
        run_dir = Path(args.run)
    else:
        before = set((ROOT / "runs").glob("dcgan-faces64-ema__0__*"))
        subprocess.run([sys.executable, *COMMAND], cwd=ROOT, check=True)
        (run_dir,) = set((ROOT / "runs").glob("dcgan-faces64-ema__0__*")) - before
    out = collect(run_dir)
    print(json.dumps({k: v for k, v in out["metrics"].items() if k.startswith("eval/")}, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
