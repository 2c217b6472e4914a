"""open_clip's contrastive loss with one hard-negative caption per image (NegCLIP, Yuksekgonul et al. 2023).

Image -> text scores each image against every caption of the global batch *and* every hard negative; text ->
image is open_clip's unchanged. Across ranks the negatives are gathered with the captions (`gather_with_grad`),
so N workers see the same candidates as one worker with the global batch.
"""

from __future__ import annotations

import open_clip
import torch
import torch.nn.functional as F
from open_clip.loss import gather_features


class HardNegativeClipLoss(open_clip.ClipLoss):
    def __init__(self, rank: int = 0, world_size: int = 1):
        super().__init__(local_loss=True, gather_with_grad=True, rank=rank, world_size=world_size)

    def forward(self, image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor,
                negative_features: torch.Tensor | None = None) -> torch.Tensor:
        if negative_features is None:
            return super().forward(image_features, text_features, logit_scale)
        b = len(image_features)
        candidates = torch.cat([text_features, negative_features])  # this rank's captions, then its negatives
        all_images, all_candidates = image_features, candidates
        if self.world_size > 1:
            all_images, all_candidates = gather_features(image_features, candidates, local_loss=True,
                                                         gather_with_grad=True, rank=self.rank,
                                                         world_size=self.world_size)
        positives = torch.arange(b, device=image_features.device)
        # rank r's captions sit at r*2b .. r*2b+b-1 among the gathered candidates, its images at r*b .. r*b+b-1
        per_image = logit_scale * image_features @ all_candidates.T
        per_text = logit_scale * text_features @ all_images.T
        return (F.cross_entropy(per_image, positives + 2 * b * self.rank)
                + F.cross_entropy(per_text, positives + b * self.rank)) / 2
