"""The main job: train the autoencoders and the VAE (chapters 5.1-5.2) on an embedded local Ray and write
runs/chapter1__<seed>__<time>/report.md with the metrics table and every figure.

    python jobs/chapter1.py                 # 2 epochs per model
    python jobs/chapter1.py --smoke-test    # a few batches per model
"""

from __future__ import annotations

from genlab.core.cli import cli
from genlab.distributed.chapters import Chapter1Config, run_chapter1
from genlab.distributed.jobs import setup_logging


def main(cfg: Chapter1Config) -> None:
    setup_logging()
    report = run_chapter1(cfg)
    print(f"report: {report}")
    print(report.read_text().split("\n## ")[0])


if __name__ == "__main__":
    main(cli(Chapter1Config))
