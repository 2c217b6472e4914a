"""Untrained but complete parts of the text-to-image pipeline, built in a second: for tests of its mechanics."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from genlab.autoencoders import ModelConfig, TrainConfig
from genlab.autoencoders.models import build_model
from genlab.core.checkpoint import save_checkpoint
from genlab.core.config import to_dict
from genlab.multimodal.models import create_clip
from genlab.pipeline import MixturePrior, PriorConfig, RefinerUNet, TextToImagePipeline

CLIP = "genlab-clip-rn"
LATENT = 4


def random_clip_weights(out: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    model, _, _ = create_clip(CLIP)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, out / "model.safetensors")
    return out / "model.safetensors"


def tiny_vae_checkpoint(out: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    cfg = TrainConfig(model=ModelConfig(kind="vae", arch="mlp", hidden=(32,), latent_dim=LATENT))
    return save_checkpoint(out, family="autoencoders", config=to_dict(cfg), model=build_model(cfg.model))


def tiny_pipeline(out: Path, clip_weights: Path | None = None, seed: int = 0) -> Path:
    """A saved pipeline directory: the given (or a random) CLIP, a random prior, VAE and text-conditioned refiner."""
    from genlab.core.checkpoint import load_model

    clip_weights = clip_weights or random_clip_weights(out.parent / f"{out.name}-clip", seed)
    vae_dir = tiny_vae_checkpoint(out.parent / f"{out.name}-vae", seed)
    clip, _, tokenizer = create_clip(CLIP, str(clip_weights))
    torch.manual_seed(seed)
    prior = MixturePrior(PriorConfig(embed_dim=clip.text_projection.shape[1], latent_dim=LATENT, components=3,
                                     hidden=16))
    refiner = RefinerUNet(8, embed_dim=clip.text_projection.shape[1])
    torch.nn.init.normal_(refiner.film.weight, std=0.5)  # trained FiLM is not zero: the prompt reaches the image
    pipe = TextToImagePipeline(clip, tokenizer, prior, load_model(vae_dir), refiner, CLIP)
    return pipe.save_pretrained(out, clip_weights, vae_dir)


def tiny_ddpm_pipeline(out: Path, clip_weights: Path, seed: int = 0) -> Path:
    """A saved text-conditioned DDPM pipeline: the given CLIP and a random U-Net that reads its text embeddings
    (output layers not zero, so the prompt reaches the image), DPM-Solver++ with 5 steps, guidance 3."""
    from genlab.diffusion import DiffusionConfig, SamplerConfig, ScheduleConfig, UNet, UNetConfig
    from genlab.pipeline.text_diffusion import TextDiffusion

    clip, _, tokenizer = create_clip(CLIP, str(clip_weights))
    torch.manual_seed(seed)
    cfg = DiffusionConfig(unet=UNetConfig(channels=16, channel_mults=(1, 2), attention_levels=(),
                                          cond_dim=clip.text_projection.shape[1]),
                          schedule=ScheduleConfig(timesteps=100), sampler=SamplerConfig(kind="dpm++2m", steps=5,
                                                                                       guidance=3.0))
    unet = UNet(cfg.unet)
    for p in unet.parameters():
        p.data.normal_(0, 0.05)
    ckpt = save_checkpoint(out.parent / f"{out.name}-ddpm", family="diffusion", config=to_dict(cfg), model=unet,
                           ema=unet)
    pipe = TextToImagePipeline(clip, tokenizer, clip_model=CLIP, diffusion=TextDiffusion.load(ckpt, ema=True))
    return pipe.save_pretrained(out, clip_weights, diffusion_checkpoint=ckpt)


def tiny_caption_pipeline(out: Path, seed: int = 0) -> Path:
    """A saved caption-world pipeline (CaptionDiffusionPipeline): a random token encoder + cross-attending U-Net
    (weights not zero, so the prompt reaches the image), DPM-Solver++ with 3 steps, guidance 2."""
    from genlab.diffusion import SamplerConfig, ScheduleConfig, UNetConfig
    from genlab.pipeline.caption_diffusion import CaptionDiffusion, CaptionDiffusionConfig
    from genlab.pipeline.caption_pipeline import CaptionDiffusionPipeline
    from genlab.pipeline.token_encoder import TokenEncoderConfig

    torch.manual_seed(seed)
    model = CaptionDiffusion(CaptionDiffusionConfig(
        unet=UNetConfig(channels=16, channel_mults=(1, 2), attention_levels=(-1,), in_channels=3, image_size=32,
                        context_dim=16),
        text=TokenEncoderConfig(width=16, layers=1, heads=2), schedule=ScheduleConfig(timesteps=100),
        sampler=SamplerConfig("dpm++2m", steps=3, guidance=2.0)))
    for p in model.parameters():
        p.data.normal_(0, 0.05)
    return CaptionDiffusionPipeline(model).save_pretrained(out)
