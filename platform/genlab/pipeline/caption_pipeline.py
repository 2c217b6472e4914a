"""CaptionDiffusionPipeline: the caption world's text -> image system as one object and one directory (issue 38).

    pipe = CaptionDiffusionPipeline.from_pretrained("runs/caption-pipeline")
    out = pipe(["a red seven in the top left", "a blue bag to the right of a green two"], num_images=4, seed=0)
    out.images  # (8, 3, 32, 32) in [0, 1]; out.timings_ms
    pipe.save_pretrained("elsewhere")  # a loaded pipeline saves itself: no source files needed

Its one component is CaptionDiffusion (a token encoder trained with a cross-attending pixel U-Net); the sampler
(DPM-Solver++, guidance and steps chosen on validation prompts) is saved with it. On disk: `pipeline.json`
(format, generator kind, the sampler settings and where they were chosen) and `model/`, a genlab checkpoint of
the weights it samples with (a training run's EMA weights). Only this module reads or writes that layout; the Serve
deployment wraps this same object.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch

from genlab.core.checkpoint import find_latest_checkpoint, load_model, save_checkpoint
from genlab.core.config import save_json, to_dict
from genlab.pipeline.caption_diffusion import CaptionDiffusion
from genlab.pipeline.directory import pipeline_dir, pipeline_meta
from genlab.pipeline.pipeline import PipelineOutput, PromptError, check_prompts

FORMAT = 1
GENERATOR = "caption_diffusion"
MAX_GUIDANCE = 20.0
MAX_STEPS = 100


class CaptionDiffusionPipeline:
    def __init__(self, model: CaptionDiffusion, device: str | torch.device = "cpu", chosen_on: str = ""):
        self.model = model.eval().to(device)
        self.device = torch.device(device)
        self.chosen_on = chosen_on  # where the saved sampler settings were decided (e.g. a validation JSON)

    generator = GENERATOR

    @property
    def sampler(self):
        return self.model.cfg.sampler

    def with_sampler(self, guidance: float | None = None, steps: int | None = None,
                     chosen_on: str = "") -> "CaptionDiffusionPipeline":
        """The same weights with other default sampler settings (e.g. those chosen on validation prompts)."""
        s = dataclasses.replace(self.sampler, guidance=self.sampler.guidance if guidance is None else guidance,
                                steps=steps or self.sampler.steps)
        self.model.cfg = dataclasses.replace(self.model.cfg, sampler=s)
        self.chosen_on = chosen_on or self.chosen_on
        return self

    def tokens(self, prompts: list[str]) -> torch.Tensor:
        from genlab.data.captions import tokenize

        try:
            return tokenize(prompts)
        except ValueError as err:  # over the 32 tokens the encoder reads
            raise PromptError(f"a prompt is too long for the caption model ({err})") from None

    @torch.no_grad()
    def __call__(self, prompts: str | list[str], num_images: int = 1, seed: int = 0, guidance: float | None = None,
                 steps: int | None = None) -> PipelineOutput:
        """num_images images per prompt (prompt-major), reproducible from `seed`; guidance and steps default to the
        saved sampler's."""
        prompts = check_prompts(prompts, num_images)
        if guidance is not None and not 0 <= guidance <= MAX_GUIDANCE:
            raise PromptError(f"guidance must be in 0..{MAX_GUIDANCE}, got {guidance}")
        if steps is not None and not 1 <= steps <= MAX_STEPS:
            raise PromptError(f"steps must be in 1..{MAX_STEPS}, got {steps}")
        t0 = time.perf_counter()
        tokens = self.tokens(prompts).repeat_interleave(num_images, 0)
        images = self.model.generate(tokens, seed=seed, guidance=guidance, steps=steps).cpu()
        per_image = [p for p in prompts for _ in range(num_images)]
        return PipelineOutput(images, images, torch.zeros(len(images), 0), per_image,
                              {"generator": (time.perf_counter() - t0) * 1e3})

    # -- saving and loading ----------------------------------------------------------------------------------
    def save_pretrained(self, out: str | Path) -> Path:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        save_checkpoint(out / "model", family="pipeline.caption_diffusion", model=self.model,
                        config={"model": to_dict(self.model.cfg)})
        save_json({"format": FORMAT, "generator": GENERATOR, "sampler": to_dict(self.sampler),
                   "chosen_on": self.chosen_on}, out / "pipeline.json")
        return out

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu") -> "CaptionDiffusionPipeline":
        path = pipeline_dir(path)  # a run directory holding pipeline/ works too
        meta = read_meta(path)
        if meta.get("generator") != GENERATOR:
            raise ValueError(f"{path} holds a {meta.get('generator')!r} pipeline, not {GENERATOR!r} "
                             "(genlab.pipeline.load_pipeline opens either)")
        return cls(load_model(path / "model", device=device), device, meta.get("chosen_on", ""))

    @classmethod
    def from_training_run(cls, run: str | Path, device: str | torch.device = "cpu") -> "CaptionDiffusionPipeline":
        """From a jobs/caption_diffusion.py run (or checkpoint) directory: its newest checkpoint's EMA weights."""
        ckpt = find_latest_checkpoint(run)
        if ckpt is None:
            raise FileNotFoundError(f"{run}: no checkpoint (train one with `python jobs/caption_diffusion.py`)")
        return cls(load_model(ckpt, ema=True, device=device), device)


def read_meta(path: Path) -> dict:
    """pipeline.json of a pipeline directory (genlab.pipeline.directory finds it), its format checked."""
    meta = pipeline_meta(path)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: pipeline format {meta.get('format')} is not {FORMAT}")
    return meta


def load_pipeline(path: str | Path, device: str | torch.device = "cpu"):
    """Either pipeline from its directory: a CaptionDiffusionPipeline (caption world, 32x32 RGB) or a
    TextToImagePipeline (the digit configuration: prior chain or text DDPM, 28x28 grey)."""
    from genlab.pipeline.pipeline import TextToImagePipeline

    path = pipeline_dir(path)  # a run directory holding pipeline/ works too
    if read_meta(path).get("generator") == GENERATOR:
        return CaptionDiffusionPipeline.from_pretrained(path, device)
    return TextToImagePipeline.from_pretrained(path, device)
