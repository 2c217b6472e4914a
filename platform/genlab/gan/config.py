"""The training config of the GAN family (the seed's DCGAN, optionally conditional, with stabilisers)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from genlab.data.images import image_shape, is_image_set, run_tag
from genlab.gan.models import GANConfig


@dataclass
class GANTrainConfig:
    model: GANConfig = field(default_factory=GANConfig)
    """Architecture (latent size, widths, spectral norm, classes)."""
    dataset: str = "mnist"
    """'mnist' or 'fashion_mnist' (28x28 grey); a colour set ('faces', 'celeba', 'cifar10',
    'folder:<dir>[@<size>]') selects the DCGAN paper's networks at its image size and channels."""
    epochs: int = 10
    """Passes over the training set."""
    batch_size: int = 64
    """Global batch size (the seed's 64; split evenly across workers)."""
    lr_g: float = 2e-4
    """Adam learning rate of the generator."""
    lr_d: float = 2e-4
    """Adam learning rate of the discriminator."""
    betas: tuple[float, float] = (0.5, 0.999)
    """Adam betas of both optimisers (DCGAN's 0.5 / 0.999)."""
    label_smoothing: float = 0.0
    """One-sided label smoothing: real targets become 1 - this (0 = off; 0.1 is common)."""
    ema_decay: float = 0.0
    """EMA of the generator's weights, used for samples and evaluation (0 = off; 0.999 is common)."""
    log_every: int = 50
    """Steps per diagnostics record (means of D(x), D(G(z)), losses and gradient norms over the window)."""
    max_steps_per_epoch: int = 0
    """Cap on steps per epoch (0 = a full pass); smoke tests use a few."""
    fld_samples: int = 10_000
    """Samples scored at the end (FLD, precision/recall, class entropy); 0 skips it."""
    fld_quick: bool = False
    """Use the quick FLD classifier (smoke runs) instead of the reference one."""
    inception_fid: bool = False
    """Also score the samples with FID on Inception-v3 features (the number papers report for CIFAR-10 and
    CelebA; `eval/fid_inception`). Needs torch-fidelity's weights, fetched once with `python -m genlab.eval.fid
    --download`; checked before training starts."""
    seed: int = 0
    """Seed of weights, data order and noise."""
    figures: bool = True
    """Write the chapter's figures (fixed-noise grids per epoch, curves, final samples)."""
    progress: bool = True
    """tqdm progress bars (rank 0 only)."""

    def run_name(self) -> str:
        tags = ["cond" if self.model.num_classes else "", "sn" if self.model.spectral_norm else "",
                "ema" if self.ema_decay else "", "ls" if self.label_smoothing else ""]
        tags.insert(0, run_tag(self.dataset))
        return "-".join(["dcgan", *filter(None, tags)])

    def __post_init__(self):
        if is_image_set(self.dataset):  # the networks follow the data's shape
            c, size, _ = image_shape(self.dataset)
            if (self.model.arch, self.model.image_size, self.model.image_channels) != ("dcgan", size, c):
                self.model = dataclasses.replace(self.model, arch="dcgan", image_size=size, image_channels=c,
                                                 d_in_channels=c)
        if not 0 <= self.label_smoothing < 0.5:
            raise ValueError(f"label_smoothing must be in [0, 0.5), got {self.label_smoothing}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1) (0 = off), got {self.ema_decay}")
        if self.batch_size < 1 or self.epochs < 1 or self.log_every < 1:
            raise ValueError(f"batch_size, epochs and log_every must be >= 1, got {self.batch_size}, "
                             f"{self.epochs}, {self.log_every}")


def smoke_config(cfg: GANTrainConfig) -> GANTrainConfig:
    """The same config at smoke scale: a few batches, few samples, the quick FLD classifier."""
    return dataclasses.replace(cfg, epochs=1, max_steps_per_epoch=4, batch_size=16, log_every=2, fld_samples=200,
                               fld_quick=True, progress=False)
