"""Training configs of the pipeline's two trained stages (the CLIP and the VAE come trained)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from genlab.diffusion.config import DiffusionConfig
from genlab.diffusion.samplers import SamplerConfig
from genlab.diffusion.unet import UNetConfig
from genlab.pipeline.prior import PriorConfig
from genlab.pipeline.refiner import RefinerConfig


@dataclass
class FrozenParts:
    """The trained components a stage learns against (filled in by jobs/pipeline.py)."""
    clip_model: str = "genlab-clip-rn"
    """open_clip model name of the CLIP."""
    clip_weights: str = ""
    """Its weights file (model.safetensors of a jobs/clip.py checkpoint)."""
    vae: str = ""
    """A chapter 5.2 VAE checkpoint directory (jobs/vae.py)."""


@dataclass
class PriorTrainConfig:
    parts: FrozenParts = field(default_factory=FrozenParts)
    prior: PriorConfig = field(default_factory=PriorConfig)
    """The mixture prior's size (embed_dim and latent_dim come from the CLIP and the VAE)."""
    image_embed_frac: float = 0.5
    """Fraction of training pairs whose condition is a noised CLIP *image* embedding of x instead of a caption's
    text embedding (LAFITE); 0 = text only."""
    image_noise: float = 1.0
    """LAFITE noise level of those image embeddings (cosine to the clean one ~ 1/sqrt(1 + noise^2))."""
    target: str = "sample"
    """What the prior learns to sample: 'sample' (z ~ q(z | x)) or 'mean' (the posterior mean of x). Measured:
    'mean' is less faithful (benchmarks/RESULTS.md, the final system's ablation)."""
    dataset: str = "mnist"
    epochs: int = 10
    batch_size: int = 256
    lr: float = 1e-3
    max_steps_per_epoch: int = 0
    """Cap on steps per epoch (0 = a full pass)."""
    seed: int = 0
    progress: bool = True

    def run_name(self) -> str:
        return "pipeline-prior"

    def __post_init__(self):
        if self.target not in ("mean", "sample"):
            raise ValueError(f"target must be 'mean' or 'sample', got {self.target!r}")
        if not 0.0 <= self.image_embed_frac <= 1.0 or self.image_noise < 0:
            raise ValueError(f"need 0 <= image_embed_frac <= 1 and image_noise >= 0, got {self.image_embed_frac}, "
                             f"{self.image_noise}")


@dataclass
class RefinerTrainConfig:
    parts: FrozenParts = field(default_factory=FrozenParts)
    refiner: RefinerConfig = field(default_factory=RefinerConfig)
    l1_weight: float = 100.0
    """Weight of L1(refined, x) against the adversarial term (pix2pix's 100; measured: 20 sharpens less faithfully
    and lowers the FLD less)."""
    clip_weight: float = 0.0
    """Weight of a content loss through the frozen CLIP image tower: 1 - cos(CLIP(refined), CLIP(x)); it keeps
    the digit a decode shows (0 = pix2pix as published)."""
    text_condition: bool = True
    """The U-Net also reads the CLIP text embedding of a caption of x (at inference: of the prompt), so that an
    ambiguous decode is sharpened towards the digit asked for; False = pix2pix's decode-only generator."""
    class_discriminator: bool = True
    """The discriminator also sees x's digit (projection) and judges a sharp wrong digit fake; False = pix2pix's."""
    dataset: str = "mnist"
    epochs: int = 3
    batch_size: int = 64
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    max_steps_per_epoch: int = 0
    seed: int = 0
    progress: bool = True

    def run_name(self) -> str:
        return "pipeline-refiner"


def _text_ddpm() -> DiffusionConfig:
    # chapter 5.4's class-conditional U-Net and schedule; the condition is a caption's CLIP text embedding.
    # No FLD at the end of training: the pipeline's evaluation scores it like the prior's images.
    return DiffusionConfig(unet=UNetConfig(channels=16, channel_mults=(1, 2, 4)), epochs=8, fld_samples=0,
                           sampler=SamplerConfig(kind="dpm++2m", steps=20, guidance=3.0))


@dataclass
class TextDiffusionTrainConfig:
    """The alternative generator: a DDPM U-Net that reads the CLIP text embedding of a caption of each training
    image (training-template captions of its digit), with caption dropout for classifier-free guidance."""
    parts: FrozenParts = field(default_factory=FrozenParts)
    diffusion: DiffusionConfig = field(default_factory=_text_ddpm)
    """The DDPM (its unet.cond_dim comes from the CLIP); its sampler is the pipeline's default sampler."""
    seed: int = 0
    progress: bool = True

    def run_name(self) -> str:
        return "pipeline-text-ddpm"


def smoke_prior(cfg: PriorTrainConfig) -> PriorTrainConfig:
    return dataclasses.replace(cfg, epochs=1, max_steps_per_epoch=5, batch_size=64, progress=False)


def smoke_refiner(cfg: RefinerTrainConfig) -> RefinerTrainConfig:
    return dataclasses.replace(cfg, epochs=1, max_steps_per_epoch=5, batch_size=32, progress=False)


def smoke_text_diffusion(cfg: TextDiffusionTrainConfig) -> TextDiffusionTrainConfig:
    from genlab.diffusion.config import smoke_config

    d = smoke_config(cfg.diffusion)
    d = dataclasses.replace(d, figures=False, fld_samples=0, grid_steps=0,
                            unet=dataclasses.replace(d.unet, channel_mults=(1, 2)),
                            sampler=dataclasses.replace(d.sampler, guidance=cfg.diffusion.sampler.guidance))
    return dataclasses.replace(cfg, diffusion=d, progress=False)
