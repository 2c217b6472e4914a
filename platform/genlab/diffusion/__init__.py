"""Chapter 5.4: DDPM with a U-Net, DDIM fast sampling, classifier-free guidance. Pure torch, no ray."""

from genlab.core.checkpoint import register_family
from genlab.core.config import from_dict
from genlab.diffusion.config import DiffusionConfig
from genlab.diffusion.samplers import SamplerConfig, guided_eps, sample
from genlab.diffusion.schedule import NoiseSchedule, ScheduleConfig
from genlab.diffusion.unet import UNet, UNetConfig


def _build_from_checkpoint(config: dict) -> UNet:
    return UNet(from_dict(DiffusionConfig, config).unet)


register_family("diffusion", _build_from_checkpoint)

__all__ = ["DiffusionConfig", "NoiseSchedule", "SamplerConfig", "ScheduleConfig", "UNet", "UNetConfig",
           "guided_eps", "sample"]
