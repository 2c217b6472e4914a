"""The training config of the autoencoder family (AE variants and VAEs)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from genlab.autoencoders.models import ModelConfig
from genlab.data.images import image_shape, is_image_set, run_tag

OBJECTIVES = ("classic", "denoising", "sparse")


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    """Architecture (kind, arch, latent size, widths)."""
    objective: str = "classic"
    """Autoencoders only: 'classic', 'denoising' (Gaussian input noise, clean target) or 'sparse' (L1 on z)."""
    noise_factor: float = 0.3
    """Denoising: std of the Gaussian noise added to inputs before clamping to [0, 1]."""
    sparsity_weight: float = 1e-4
    """Sparse: lambda of the L1 penalty on the code z (sum over dims, mean over the batch)."""
    beta: float = 1.0
    """VAE only: weight of the KL term (1 = the ELBO; > 1 = beta-VAE)."""
    binarize: bool = True
    """VAE only: dynamically binarise training images (pixel ~ Bernoulli(intensity)) each time they are seen, and
    score binarised test images (grey sets only: colour images train and are scored on their intensities, where
    the negative ELBO is a cross-entropy bound, not a likelihood)."""
    dataset: str = "mnist"
    """'mnist' or 'fashion_mnist' (28x28 grey); a colour set ('faces@32', 'cifar10', 'folder:<dir>@32', ...) sets
    the nets' image size and channels from the data."""
    epochs: int = 10
    """Passes over the training set."""
    batch_size: int = 128
    """Global batch size (split evenly across workers)."""
    lr: float = 1e-3
    """Adam learning rate (peak)."""
    cosine_decay: bool = True
    """Decay the learning rate to 0 over training with a cosine."""
    max_steps_per_epoch: int = 0
    """Cap on steps per epoch (0 = a full pass); smoke tests use a few."""
    eval_images: int = 10_000
    """Test images used by the per-epoch evaluation."""
    iw_k: int = 0
    """VAE only: importance samples of the final IW-NLL estimate (1000 for reporting; 0 skips it)."""
    iw_images: int = 10_000
    """VAE only: test images for the final IW-NLL estimate."""
    seed: int = 0
    """Seed of weights, data order, noise and sampling."""
    figures: bool = True
    """Write the chapter's figures into the run directory at the end."""
    progress: bool = True
    """tqdm progress bars (rank 0 only)."""

    def run_name(self) -> str:
        """e.g. 'ae-conv-denoising' or 'vae-conv-beta4' (colour: 'vae-conv-faces32-beta1'): the job part of the
        run directory's name."""
        variant = self.objective if self.model.kind == "ae" else f"beta{self.beta:g}"
        return "-".join(filter(None, [self.model.kind, self.model.arch, run_tag(self.dataset), variant]))

    def __post_init__(self):
        if is_image_set(self.dataset):  # the nets follow the data's shape; colour is not binarised
            c, size, _ = image_shape(self.dataset)
            if (self.model.image_channels, self.model.image_size) != (c, size):
                self.model = dataclasses.replace(self.model, image_channels=c, image_size=size)
            self.binarize = False
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.model.kind == "vae" and self.objective != "classic":
            raise ValueError("objective applies to autoencoders only; a VAE trains on its ELBO (use beta)")
        if self.batch_size < 1 or self.epochs < 1:
            raise ValueError(f"batch_size and epochs must be >= 1, got {self.batch_size}, {self.epochs}")


def smoke_config(cfg: TrainConfig) -> TrainConfig:
    """The same config at smoke scale: one epoch of a few batches, cheap evaluation."""
    return dataclasses.replace(cfg, epochs=1, max_steps_per_epoch=5, batch_size=32, eval_images=500,
                               iw_k=min(cfg.iw_k, 10), iw_images=100, progress=False)
