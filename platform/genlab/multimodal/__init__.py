"""Chapter 5.7: CLIP (open_clip's models, trained here on captioned canvases), zero-shot, retrieval, an index."""

from genlab.multimodal.config import ClipConfig
from genlab.multimodal.models import create_clip, prepare_images

__all__ = ["ClipConfig", "create_clip", "prepare_images"]
