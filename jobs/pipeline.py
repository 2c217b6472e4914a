"""The final system (chapter 5.7 + 5.2 + 5.3): train the text -> VAE-latent prior and the GAN refiner on Ray
Train, assemble text -> CLIP text encoder -> prior -> VAE decoder -> refiner, measure it.

    python jobs/pipeline.py                                   # newest runs/clip-* CLIP, trains the VAE too
    python jobs/pipeline.py --clip runs/clip-rn__0__<time> --vae runs/vae-conv-beta1__0__<time>
    python jobs/pipeline.py --ray.resume runs/pipeline__0__<time>   # continue an interrupted run
    python jobs/pipeline.py --smoke-test                      # a minute, end to end
Then serve it: python jobs/serve_generate.py --pipeline runs/pipeline__0__<time>/pipeline
"""

from __future__ import annotations

from genlab.core.cli import cli
from genlab.distributed.pipeline_job import PipelineArgs, run_pipeline_job

if __name__ == "__main__":
    args = cli(PipelineArgs)
    try:
        run_pipeline_job(args)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"jobs/pipeline.py: {err}") from None
