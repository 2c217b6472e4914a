"""Train chapter 5.7's CLIP (an open_clip model, our tiny config) on captioned canvases; at the end: zero-shot
accuracy on plain MNIST / Fashion-MNIST, retrieval R@k and attribute-exact top-1 on the held-out caption
splits, a linear-probe baseline, the similarity matrix and retrieval grids.

    python jobs/clip.py                                   # genlab-clip-rn, 8 epochs over 100k pairs
    python jobs/clip.py --train.model genlab-clip-vit --ray.num-workers 2
    ray job submit --working-dir . -- python jobs/clip.py --smoke-test
"""

from __future__ import annotations

from dataclasses import dataclass, field

from genlab.core.cli import cli
from genlab.distributed.jobs import train_job
from genlab.distributed.trainer import RayConfig
from genlab.multimodal import ClipConfig
from genlab.multimodal.config import smoke_config


@dataclass
class Args:
    train: ClipConfig = field(default_factory=ClipConfig)
    """What to train."""
    ray: RayConfig = field(default_factory=RayConfig)
    """Where and how it runs."""
    smoke_test: bool = False
    """Tiny run (the small caption set, a few batches, CPU) that checks everything end to end."""


def main(args: Args) -> None:
    train_job(args.train, "genlab.multimodal.train:train", args.ray, args.smoke_test, smoke_config)


if __name__ == "__main__":
    main(cli(Args))
