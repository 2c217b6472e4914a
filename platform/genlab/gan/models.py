"""The seed's DCGAN for 28x28 images (chapter 5.3), optionally class-conditional, and the DCGAN paper's
architecture for 32x32 / 64x64 colour images (`arch="dcgan"`). Pure torch.

Generator: z (+ label embedding) -> linear to 128x7x7 -> BatchNorm -> [upsample x2, conv 3x3, BatchNorm,
LeakyReLU] x 2 -> conv 3x3 -> tanh, images in [-1, 1]. Discriminator: four stride-2 conv blocks (LeakyReLU,
dropout, BatchNorm after the first) -> linear. D returns *logits*: sigmoid(logit) is the seed's D(x), and
BCE-with-logits is its BCE, computed stably. Conditional D uses the projection trick (Miyato & Koyama 2018):
logit = linear(h) + <embed(y), h>.

`arch="dcgan"` (Radford et al. 2016, as in PyTorch's DCGAN example): G is z -> transposed convs 4x4 stride 2
from 4x4 up to the image size with BatchNorm + ReLU, tanh out; D is strided 4x4 convs down to 4x4 with LeakyReLU
0.2 and BatchNorm (not on the first), then a 4x4 conv to one logit; weights drawn from N(0, 0.02), BatchNorm
scales from N(1, 0.02), as the paper does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


@dataclass
class GANConfig:
    latent_dim: int = 100
    """Size of the noise vector z."""
    g_channels: tuple[int, int] = (128, 64)
    """Generator widths at 14x14 and 28x28 (the linear layer outputs g_channels[0] x 7 x 7)."""
    d_channels: tuple[int, ...] = (16, 32, 64, 128)
    """Discriminator widths of its stride-2 blocks (28 -> 14 -> 7 -> 4 -> 2 for four)."""
    d_dropout: float = 0.25
    """Dropout2d after each discriminator block."""
    spectral_norm: bool = False
    """Spectral normalisation of every D layer (Miyato et al. 2018); D then drops its BatchNorms."""
    num_classes: int = 0
    """0 = unconditional; > 0 = class-conditional G (label embedding concatenated to z) and projection D."""
    label_embedding: int = 50
    """Conditional G: size of the label embedding concatenated to z."""
    image_size: int = 28
    """Side of the (square, single-channel) images; must be divisible by 4."""
    d_in_channels: int = 1
    """Channels D takes: 1 for images; 2 for a conditional D that sees (input, output) pairs (the pix2pix
    refiner of the text-to-image pipeline)."""
    arch: str = "seed"
    """'seed': the seed's 28x28 model above; 'dcgan': the DCGAN paper's (image_size 32 or 64)."""
    image_channels: int = 1
    """Channels of the images G draws (3 for colour); D takes d_in_channels, so set both."""
    width: int = 64
    """'dcgan': G's last and D's first layer width (the paper's 64 = ngf = ndf); each level doubles it."""

    def __post_init__(self):
        if self.latent_dim < 1 or self.image_size % 4:
            raise ValueError(f"need latent_dim >= 1 and image_size divisible by 4, got {self.latent_dim}, "
                             f"{self.image_size}")
        if self.arch not in ("seed", "dcgan"):
            raise ValueError(f"arch must be 'seed' or 'dcgan', got {self.arch!r}")
        if self.arch == "dcgan" and self.image_size not in (32, 64, 128):
            raise ValueError(f"arch 'dcgan' draws 32, 64 or 128 px images, got image_size {self.image_size}")
        if len(self.g_channels) != 2 or not self.d_channels:
            raise ValueError(f"g_channels needs 2 widths and d_channels at least one, got {self.g_channels}, "
                             f"{self.d_channels}")


class Generator(nn.Module):
    def __init__(self, cfg: GANConfig = GANConfig()):
        super().__init__()
        self.cfg = cfg
        if cfg.arch == "dcgan":
            self._build_dcgan(cfg)
            return
        c0, c1 = cfg.g_channels
        self.init_size = cfg.image_size // 4
        self.embed = nn.Embedding(cfg.num_classes, cfg.label_embedding) if cfg.num_classes else None
        in_dim = cfg.latent_dim + (cfg.label_embedding if cfg.num_classes else 0)
        self.fc = nn.Linear(in_dim, c0 * self.init_size ** 2)
        self.body = nn.Sequential(
            nn.BatchNorm2d(c0),
            nn.Upsample(scale_factor=2), nn.Conv2d(c0, c0, 3, padding=1), nn.BatchNorm2d(c0), nn.LeakyReLU(0.2),
            nn.Upsample(scale_factor=2), nn.Conv2d(c0, c1, 3, padding=1), nn.BatchNorm2d(c1), nn.LeakyReLU(0.2),
            nn.Conv2d(c1, cfg.image_channels, 3, padding=1), nn.Tanh(),
        )

    def _build_dcgan(self, cfg: GANConfig) -> None:
        levels = _levels(cfg.image_size)  # 4 -> 8 -> ... -> image_size
        widths = [cfg.width * 2 ** i for i in reversed(range(levels))]  # e.g. 512, 256, 128, 64 for 64 px
        self.embed = nn.Embedding(cfg.num_classes, cfg.label_embedding) if cfg.num_classes else None
        in_dim = cfg.latent_dim + (cfg.label_embedding if cfg.num_classes else 0)
        layers = [nn.ConvTranspose2d(in_dim, widths[0], 4, 1, 0, bias=False), nn.BatchNorm2d(widths[0]),
                  nn.ReLU(True)]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(widths[-1], cfg.image_channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.body = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """z: (B, latent_dim), y: (B,) labels for a conditional G -> images (B, C, S, S) in [-1, 1]."""
        if self.embed is not None:
            if y is None:
                raise ValueError("this generator is class-conditional: pass labels y")
            z = torch.cat([z, self.embed(y)], dim=1)
        if self.cfg.arch == "dcgan":
            return self.body(z[:, :, None, None])
        h = self.fc(z).view(len(z), self.cfg.g_channels[0], self.init_size, self.init_size)
        return self.body(h)


class Discriminator(nn.Module):
    def __init__(self, cfg: GANConfig = GANConfig()):
        super().__init__()
        self.cfg = cfg
        sn = spectral_norm if cfg.spectral_norm else (lambda m: m)
        if cfg.arch == "dcgan":
            self._build_dcgan(cfg, sn)
            return
        layers, c_in, size = [], cfg.d_in_channels, cfg.image_size
        for i, c_out in enumerate(cfg.d_channels):
            layers += [sn(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)), nn.LeakyReLU(0.2),
                       nn.Dropout2d(cfg.d_dropout)]
            if i > 0 and not cfg.spectral_norm:
                layers.append(nn.BatchNorm2d(c_out))
            c_in, size = c_out, (size + 1) // 2
        self.body = nn.Sequential(*layers, nn.Flatten())
        features = c_in * size * size
        self.head = sn(nn.Linear(features, 1))
        self.embed = sn(nn.Embedding(cfg.num_classes, features)) if cfg.num_classes else None

    def _build_dcgan(self, cfg: GANConfig, sn) -> None:
        widths = [cfg.width * 2 ** i for i in range(_levels(cfg.image_size))]  # e.g. 64, 128, 256, 512
        layers, c_in = [], cfg.d_in_channels
        for i, c_out in enumerate(widths):
            layers.append(sn(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False)))
            if i > 0 and not cfg.spectral_norm:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            c_in = c_out
        self.body = nn.Sequential(*layers)  # (B, widths[-1], 4, 4)
        self.head = nn.Sequential(sn(nn.Conv2d(c_in, 1, 4, 1, 0, bias=False)), nn.Flatten())
        self.embed = sn(nn.Embedding(cfg.num_classes, c_in)) if cfg.num_classes else None
        self.apply(dcgan_init)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """x: images in [-1, 1] -> logits (B,)."""
        h = self.body(x)
        logit = self.head(h).squeeze(1)
        if self.cfg.arch == "dcgan":
            h = h.sum((2, 3))  # the projection term over pooled features
        if self.embed is not None:
            if y is None:
                raise ValueError("this discriminator is class-conditional: pass labels y")
            logit = logit + (self.embed(y) * h).sum(1)
        return logit


def _levels(image_size: int) -> int:
    """Width levels of the 'dcgan' nets: log2(size) - 2 (64 px: 4, the paper's 64-128-256-512 for D)."""
    return image_size.bit_length() - 3  # 32 -> 3, 64 -> 4, 128 -> 5


def dcgan_init(module: nn.Module) -> None:
    """The DCGAN paper's initialisation: conv weights ~ N(0, 0.02); BatchNorm scale ~ N(1, 0.02), shift 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class GAN(nn.Module):
    """Both networks in one module, so one checkpoint holds the pair."""

    def __init__(self, cfg: GANConfig = GANConfig(), generator: Generator | None = None,
                 discriminator: Discriminator | None = None):
        super().__init__()
        self.cfg = cfg
        self.generator = generator if generator is not None else Generator(cfg)
        self.discriminator = discriminator if discriminator is not None else Discriminator(cfg)

    def sample_noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.cfg.latent_dim, generator=generator)

    @torch.no_grad()
    def generate(self, n: int, labels: torch.Tensor | None = None, seed: int = 0,
                 batch_size: int = 1000) -> torch.Tensor:
        """n images in [0, 1], (n, C, S, S), from a seeded noise stream (eval-mode generator)."""
        g = self.generator.eval()
        device = next(g.parameters()).device
        gen = torch.Generator().manual_seed(seed)
        if self.cfg.num_classes and labels is None:
            labels = torch.randint(0, self.cfg.num_classes, (n,), generator=gen)
        out = []
        for s in range(0, n, batch_size):
            z = self.sample_noise(min(batch_size, n - s), gen).to(device)
            y = labels[s:s + batch_size].to(device) if labels is not None else None
            out.append(g(z, y).cpu())
        return (torch.cat(out) + 1) / 2
