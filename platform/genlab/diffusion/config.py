"""The training config of the diffusion family (DDPM with a U-Net, optionally class-conditional)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from genlab.data.images import image_shape, is_image_set, run_tag
from genlab.diffusion.samplers import SamplerConfig
from genlab.diffusion.schedule import ScheduleConfig
from genlab.diffusion.unet import UNetConfig


@dataclass
class DiffusionConfig:
    unet: UNetConfig = field(default_factory=lambda: UNetConfig(channels=16, channel_mults=(1, 2, 4)))
    """The eps-prediction network (num_classes=10 for a class-conditional model)."""
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    """Noise schedule shared by the loss and the samplers."""
    label_dropout: float = 0.2
    """Conditional models: fraction of training labels replaced by the null class (what makes classifier-free
    guidance possible; the same network then also samples unconditionally)."""
    dataset: str = "mnist"
    """'mnist' or 'fashion_mnist' (28x28 grey); a colour set ('faces@32', 'cifar10', 'folder:<dir>@32', ...)
    sets the U-Net's channels and image size from the data."""
    epochs: int = 15
    """Passes over the training set."""
    batch_size: int = 128
    """Global batch size (split evenly across workers)."""
    lr: float = 1e-3
    """Adam peak learning rate."""
    warmup_steps: int = 200
    """Linear warm-up steps, then cosine decay to 0."""
    grad_clip: float = 1.0
    """Gradient-norm clipping (0 = off)."""
    ema_decay: float = 0.999
    """EMA of the weights used for sampling and evaluation."""
    max_steps_per_epoch: int = 0
    """Cap on steps per epoch (0 = a full pass); smoke tests use a few."""
    eval_images: int = 2000
    """Test images for the per-epoch held-out loss (fixed t and noise)."""
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    """Sampler of the final evaluation (FLD) and of the sample figures."""
    grid_steps: int = 25
    """DDIM steps of the per-epoch sample grid (cheap preview; 0 = none)."""
    fld_samples: int = 2000
    """Samples whose FLD (vs the test set) is computed at the end; 0 skips it."""
    fld_quick: bool = False
    """Use the quick FLD classifier (smoke runs) instead of the reference one."""
    inception_fid: bool = False
    """Also score the samples with FID on Inception-v3 features (the number papers report for CIFAR-10 and
    CelebA; `eval/fid_inception`). Needs torch-fidelity's weights, fetched once with `python -m genlab.eval.fid
    --download`; checked before training starts."""
    seed: int = 0
    """Seed of weights, data order, noise and sampling."""
    figures: bool = True
    """Write the chapter's figures into the run directory at the end."""
    progress: bool = True
    """tqdm progress bars (rank 0 only)."""

    @property
    def conditional(self) -> bool:
        return self.unet.num_classes > 0

    def run_name(self) -> str:
        return "-".join(filter(None, ["ddpm", run_tag(self.dataset), self.schedule.kind,
                                      "cond" if self.conditional else ""]))

    def __post_init__(self):
        if is_image_set(self.dataset):  # the U-Net follows the data's shape
            c, size, _ = image_shape(self.dataset)
            if (self.unet.in_channels, self.unet.image_size) != (c, size):
                self.unet = dataclasses.replace(self.unet, in_channels=c, image_size=size)
        if not 0 <= self.label_dropout < 1:
            raise ValueError(f"label_dropout must be in [0, 1), got {self.label_dropout}")
        if self.batch_size < 1 or self.epochs < 1:
            raise ValueError(f"batch_size and epochs must be >= 1, got {self.batch_size}, {self.epochs}")
        if not 0 < self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in (0, 1), got {self.ema_decay}")


def smoke_config(cfg: DiffusionConfig) -> DiffusionConfig:
    """The same config at smoke scale: a few batches, a tiny sampler, the quick FLD classifier."""
    return dataclasses.replace(cfg, epochs=1, max_steps_per_epoch=4, batch_size=32, eval_images=200,
                               sampler=dataclasses.replace(cfg.sampler, kind="ddim", steps=5, batch_size=100),
                               grid_steps=3, fld_samples=200, fld_quick=True, warmup_steps=2, progress=False)
