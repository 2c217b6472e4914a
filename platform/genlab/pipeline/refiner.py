"""The GAN refiner (pix2pix, Isola et al. 2017): a small U-Net maps a blurry VAE decode to a sharp image; a
conditional discriminator (the DCGAN family's, fed the (decode, image) pair as two channels) judges it.
Trained on (decode of z ~ q(z | x), x): adversarial + L1 to x, so it sharpens and keeps what the decode shows.

Like the super-resolution stages of cascaded text-to-image models (Imagen, DALL-E 2), the U-Net can also read the
prompt's CLIP embedding (FiLM on its two coarsest levels): where a decode is ambiguous between two digits, the text
says which one to sharpen towards. The discriminator can then be class-conditional (projection, Miyato & Koyama
2018), so that a sharp image of the wrong digit is judged fake."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from genlab.gan.models import Discriminator, GANConfig


@dataclass
class RefinerConfig:
    channels: int = 16
    """U-Net width at 28x28 (doubled at 14x14 and 7x7); 32 costs 4.8x the step time here (0.59 vs 0.12 s)."""
    d_channels: tuple[int, ...] = (32, 64, 128)
    """Widths of the discriminator's stride-2 blocks."""
    embed_dim: int = 0
    """Width of the text condition (the CLIP embedding); 0 = the decode alone. Set by the training loop from
    RefinerTrainConfig.text_condition."""
    d_classes: int = 0
    """Classes of a projection discriminator that also judges whether the image shows the labelled digit (the
    label of the training image x); 0 = pix2pix's unconditional one. Set from class_discriminator."""

    def __post_init__(self):
        if self.channels < 8 or self.channels % 8:
            raise ValueError(f"refiner channels must be a multiple of 8 (GroupNorm of 8 groups), got {self.channels}")
        if self.embed_dim < 0 or self.d_classes < 0:
            raise ValueError(f"embed_dim and d_classes must be >= 0, got {self.embed_dim}, {self.d_classes}")

    def discriminator_config(self) -> GANConfig:
        """The DCGAN family's discriminator, taking the (decode, image) pair as two channels."""
        return GANConfig(d_channels=tuple(self.d_channels), d_in_channels=2, d_dropout=0.0, num_classes=self.d_classes)


def _block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    k = 4 if stride == 2 else 3
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride, padding=1), nn.GroupNorm(8, c_out), nn.LeakyReLU(0.2))


class RefinerUNet(nn.Module):
    """(B, 1, 28, 28) decode in [-1, 1] (and, if `embed_dim`, the prompt's (B, embed_dim) CLIP embedding) ->
    refined image in [-1, 1]; predicts a correction to its input."""

    def __init__(self, channels: int = 32, embed_dim: int = 0):
        super().__init__()
        self.channels, self.embed_dim = channels, embed_dim
        c = channels
        self.e1, self.e2, self.e3 = _block(1, c), _block(c, 2 * c, 2), _block(2 * c, 4 * c, 2)
        self.mid = _block(4 * c, 4 * c)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.d2, self.d1 = _block(6 * c, 2 * c), _block(3 * c, c)
        self.out = nn.Conv2d(c, 1, 3, padding=1)
        self.film = nn.Linear(embed_dim, 2 * (4 * c + 2 * c)) if embed_dim else None
        if self.film is not None:  # starts as the unconditional refiner: scale 1, shift 0
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, embedding: torch.Tensor | None = None) -> torch.Tensor:
        """An unconditional refiner ignores `embedding`; a text-conditioned one requires it."""
        if self.film is not None and embedding is None:
            raise ValueError("this refiner is text-conditioned: pass the prompts' CLIP embeddings")
        h1 = self.e1(x)
        h2 = self.e2(h1)
        h = self.mid(self.e3(h2))
        if self.film is not None:
            c = self.channels
            g3, b3, g2, b2 = self.film(embedding)[:, :, None, None].split([4 * c, 4 * c, 2 * c, 2 * c], 1)
            h = h * (1 + g3) + b3
        h = self.d2(torch.cat([self.up(h), h2], 1))
        if self.film is not None:
            h = h * (1 + g2) + b2
        h = self.d1(torch.cat([self.up(h), h1], 1))
        return torch.tanh(torch.atanh(x.clamp(-0.999, 0.999)) + self.out(h))


class Refiner(nn.Module):
    """What a refiner checkpoint holds: the generator the pipeline runs and the discriminator training needs."""

    def __init__(self, cfg: RefinerConfig = RefinerConfig()):
        super().__init__()
        self.cfg = cfg
        self.generator = RefinerUNet(cfg.channels, cfg.embed_dim)
        self.discriminator = Discriminator(cfg.discriminator_config())
