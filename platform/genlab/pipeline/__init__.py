"""The final system: text -> CLIP text encoder -> prior -> VAE decoder -> GAN refiner -> image, or text -> CLIP
text encoder -> text-conditioned DDPM -> image (the digit configuration, 28x28 grey), and the caption world's
text -> token encoder -> cross-attending DDPM -> 32x32 RGB image. Pure torch. `load_pipeline(dir)` opens any."""

from genlab.core.checkpoint import register_family
from genlab.core.config import from_dict
from genlab.pipeline.caption_pipeline import CaptionDiffusionPipeline, load_pipeline
from genlab.pipeline.pipeline import PipelineOutput, PromptError, TextToImagePipeline
from genlab.pipeline.prior import MixturePrior, PriorConfig
from genlab.pipeline.refiner import Refiner, RefinerConfig, RefinerUNet
from genlab.pipeline.text_diffusion import TextDiffusion


def _build_from_checkpoint(config: dict):
    """Checkpoints of training runs (a whole Refiner or a prior) and of a saved pipeline (the refiner's U-Net)."""
    kind = config.get("kind")
    if kind == "refiner_generator":
        return RefinerUNet(config["channels"], config.get("embed_dim", 0))  # pipelines before text conditioning: 0
    if "refiner" in config:
        return Refiner(from_dict(RefinerConfig, config["refiner"]))
    return MixturePrior(from_dict(PriorConfig, config["prior"]))


register_family("pipeline", _build_from_checkpoint)

__all__ = ["CaptionDiffusionPipeline", "MixturePrior", "PipelineOutput", "PriorConfig", "PromptError", "Refiner",
           "RefinerConfig", "RefinerUNet", "TextDiffusion", "TextToImagePipeline", "load_pipeline"]
