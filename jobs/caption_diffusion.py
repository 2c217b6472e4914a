"""Train the final system's text-conditioned diffusion model on the caption world (issue 38): a 32x32 RGB pixel
DDPM whose U-Net cross-attends to the caption's tokens (a token encoder trained with it), classifier-free
guidance, DPM-Solver++. After every epoch the EMA model is scored by the compositional judge on the validation
prompt splits (`genlab.data.caption_prompts`); test prompts are scored once, later, by a benchmark.

    python jobs/caption_diffusion.py --ray.storage ../longruns             # resumable: --ray.resume <run dir>
    ray job submit --working-dir . -- python jobs/caption_diffusion.py --smoke-test
"""

from __future__ import annotations

from dataclasses import dataclass, field

from genlab.core.cli import cli
from genlab.distributed.jobs import train_job
from genlab.distributed.trainer import RayConfig
from genlab.pipeline.caption_diffusion_train import CaptionDiffusionTrainConfig, smoke_config


@dataclass
class Args:
    train: CaptionDiffusionTrainConfig = field(default_factory=CaptionDiffusionTrainConfig)
    """What to train."""
    ray: RayConfig = field(default_factory=RayConfig)
    """Where and how it runs."""
    smoke_test: bool = False
    """Tiny run (the small caption set, a few batches, CPU) that checks everything end to end."""


def main(args: Args) -> None:
    train_job(args.train, "genlab.pipeline.caption_diffusion_train:train", args.ray, args.smoke_test, smoke_config)


if __name__ == "__main__":
    main(cli(Args))
