"""Compare trained generative models (VAE, DCGAN, DDPM) on one table and one figure.

    python jobs/compare.py --vae runs/vae-conv-beta1__0__<t> --gan runs/dcgan__0__<t> --ddpm runs/ddpm-linear__0__<t>
    python jobs/compare.py ... --n 2000 --ddim-steps 50

Writes runs/compare__<seed>__<time>/: comparison.md, comparison.csv, comparison.png. Any subset of the three
models works; each path is a run directory or a checkpoint directory.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from genlab.core.cli import cli
from genlab.core.rundir import make_run_dir
from genlab.distributed.jobs import setup_logging
from genlab.eval.compare import COLUMNS, compare, comparison_figure, write_csv
from genlab.eval.report import markdown_table


@dataclass
class CompareConfig:
    vae: str = ""
    """VAE run or checkpoint directory (jobs/vae.py)."""
    gan: str = ""
    """DCGAN run or checkpoint directory (jobs/gan.py); the EMA generator is used when the run kept one."""
    ddpm: str = ""
    """DDPM run or checkpoint directory (jobs/ddpm.py); EMA weights, unconditional DDIM sampling."""
    n: int = 10_000
    """Samples per model (FLD, precision/recall against the same number of test images, up to 10k)."""
    ddim_steps: int = 50
    """DDIM steps for the diffusion model."""
    seed: int = 0
    """Seed of every sampler."""
    quick_fld: bool = False
    """Score with the quick FLD classifier (smoke runs only)."""
    out: str = "runs"
    """Where the comparison directory goes."""


def main(cfg: CompareConfig) -> Path:
    setup_logging()
    paths = {k: v for k, v in (("vae", cfg.vae), ("gan", cfg.gan), ("ddpm", cfg.ddpm)) if v}
    if not paths:
        raise SystemExit("nothing to compare: pass at least one of --vae, --gan, --ddpm (run directories)")
    for name, path in paths.items():
        if not Path(path).exists():
            raise SystemExit(f"--{name} {path}: no such directory")
    out = make_run_dir("compare", cfg.seed, root=cfg.out, config=cfg)
    rows, grids = compare(paths, n=cfg.n, seed=cfg.seed, quick=cfg.quick_fld, ddim_steps=cfg.ddim_steps)
    table = markdown_table(rows, COLUMNS)
    write_csv(rows, out / "comparison.csv")
    comparison_figure(rows, grids, out / "comparison.png")
    (out / "comparison.json").write_text(json.dumps(rows, indent=2, default=float) + "\n")
    (out / "comparison.md").write_text(
        f"# VAE vs GAN vs diffusion ({time.strftime('%Y-%m-%d')})\n\n"
        f"N = {cfg.n} samples per model against the test set, in the FLD classifier's feature space; "
        f"fld_ratio = FLD / (train-vs-test floor {rows[0]['fld_floor']:.3f}); precision/recall with k=3.\n\n"
        f"{table}\n\n![comparison](comparison.png)\n")
    print(table)
    print(f"comparison: {out}")
    return out


if __name__ == "__main__":
    main(cli(CompareConfig))
