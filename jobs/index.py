"""Embed an image collection with a CLIP image tower (Ray Data actor pool) into an index; search it by text or
image; zero-shot label it.

    python jobs/index.py --source captions:test_combos --pretrained runs/clip-rn-... --query "a red seven"
    python jobs/index.py --source ~/photos --model ViT-B-32 --pretrained laion2b_s34b_b79k --ann hnsw
    python jobs/index.py --out runs/index --query "a blue sneaker" --labels seven sneaker bag
"""

from __future__ import annotations

from genlab.core.cli import cli
from genlab.distributed.index_job import IndexArgs, run_index_job

if __name__ == "__main__":
    run_index_job(cli(IndexArgs))
