"""The training config of chapter 5.7's CLIP (an open_clip model trained on `genlab.data.captions`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass
class ClipConfig:
    model: str = "genlab-clip-rn"
    """open_clip model config: 'genlab-clip-rn' (ModifiedResNet tower, ~4x faster here) or 'genlab-clip-vit'."""
    dataset: str = "captions"
    """Caption set: 'captions' (100k training pairs) or 'captions_small' (4k, tests)."""
    epochs: int = 8
    """Passes over the training pairs."""
    batch_size: int = 256
    """Global batch (split across workers; the contrastive loss gathers features from every rank)."""
    hard_negatives: bool = False
    """NegCLIP: score each image also against its caption with the objects' sides or a colour swapped, so word
    order and binding matter (costs the text tower a second batch). Measured: better on held-out combinations,
    much worse on the held-out relation "B to the right of A" (benchmarks/RESULTS.md), hence off."""
    lr: float = 1e-3
    """AdamW peak learning rate."""
    weight_decay: float = 0.1
    """AdamW weight decay (not on gains, biases, embeddings of 1 dim, or the temperature; as open_clip)."""
    warmup_steps: int = 200
    """Linear warm-up, then cosine decay to 0."""
    grad_clip: float = 1.0
    """Gradient-norm clipping (0 = off)."""
    max_steps_per_epoch: int = 0
    """Cap on steps per epoch (0 = a full pass); smoke tests use a few."""
    log_every: int = 50
    """Steps per logged training-loss window (the loss curve; 0 = per epoch only)."""
    eval_images: int = 2000
    """Test images per dataset for the per-epoch zero-shot accuracy (the final evaluation uses all)."""
    final_images: int = 0
    """Test images per dataset for the final zero-shot accuracy (0 = the whole test set)."""
    probe_images: int = 10_000
    """Training images per dataset of the final linear-probe baseline (0 = skip)."""
    seed: int = 0
    """Seed of weights, data order and evaluation subsets."""
    figures: bool = True
    """Write the similarity matrix and retrieval grids at the end."""
    progress: bool = True
    """Progress bar (rank 0)."""

    def run_name(self) -> str:
        return f"clip-{self.model.removeprefix('genlab-clip-')}"

    def __post_init__(self):
        if self.batch_size < 2 or self.epochs < 1:
            raise ValueError(f"batch_size must be >= 2 and epochs >= 1, got {self.batch_size}, {self.epochs}")


def smoke_config(cfg: ClipConfig) -> ClipConfig:
    """The same config at smoke scale: the small caption set, a few batches."""
    return dataclasses.replace(cfg, dataset="captions_small", epochs=1, max_steps_per_epoch=4, batch_size=32,
                               warmup_steps=2, log_every=2, eval_images=200, final_images=500, probe_images=500,
                               progress=False)
