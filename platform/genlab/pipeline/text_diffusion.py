"""The pipeline's alternative generator: chapter 5.4's DDPM U-Net conditioned on the CLIP text embedding, sampled
with classifier-free guidance. One object for the pipeline and the Serve replica alike, so both give the same
image for the same (prompt, seed)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from genlab.core.checkpoint import load_model, read_checkpoint_config
from genlab.core.config import from_dict
from genlab.diffusion.config import DiffusionConfig
from genlab.diffusion.samplers import SamplerConfig, sample
from genlab.diffusion.schedule import NoiseSchedule


class TextDiffusion:
    def __init__(self, unet, schedule: NoiseSchedule, sampler: SamplerConfig, device: str | torch.device = "cpu"):
        if not unet.cfg.cond_dim:
            raise ValueError("the text-to-image DDPM needs a U-Net conditioned on vectors (cond_dim > 0)")
        self.unet, self.schedule, self.sampler = unet.eval(), schedule, sampler
        self.device = torch.device(device)

    @classmethod
    def load(cls, checkpoint: str | Path, ema: bool = False, device: str | torch.device = "cpu") -> "TextDiffusion":
        """From a DDPM checkpoint directory (its config names the schedule and the default sampler)."""
        cfg = from_dict(DiffusionConfig, read_checkpoint_config(checkpoint)["config"])
        return cls(load_model(checkpoint, ema=ema, device=device), NoiseSchedule(cfg.schedule), cfg.sampler, device)

    @property
    def cond_dim(self) -> int:
        return self.unet.cfg.cond_dim

    def start_noise(self, n: int, seed: int) -> torch.Tensor:
        """x_T of n images, from `seed` alone."""
        c, side = self.unet.cfg.in_channels, self.unet.cfg.image_size
        return torch.randn(n, c, side, side, generator=torch.Generator().manual_seed(seed))

    @torch.no_grad()
    def generate(self, embeddings: torch.Tensor, noise: torch.Tensor, guidance: float | None = None,
                 steps: int | None = None) -> torch.Tensor:
        """Images (N, C, H, W) in [0, 1] from each embedding (N, D) and its start noise; each image depends on its
        own pair alone (deterministic sampler), so requests can be batched together. guidance and steps default to
        the saved sampler's."""
        cfg = dataclasses.replace(self.sampler, guidance=self.sampler.guidance if guidance is None else guidance,
                                  steps=steps or self.sampler.steps)
        images, _ = sample(self.unet, self.schedule, len(noise), cfg, labels=embeddings.to(self.device),
                           device=self.device, noise=noise)
        return images
