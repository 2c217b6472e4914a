"""Autoencoders and VAEs for 28x28 single-channel images (chapters 5.1 and 5.2), and for colour images of any
side divisible by 4 (`image_size`, `image_channels`). Pure torch.

Every model maps images x in [0, 1], shape (B, C, S, S) (MNIST: (B, 1, 28, 28)), and decodes to *logits* of the
same shape:
`torch.sigmoid(logits)` is the seed's sigmoid output, and BCE-with-logits is the seed's BCE, computed stably.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class ModelConfig:
    kind: str = "ae"
    """'ae' (deterministic autoencoder) or 'vae' (variational)."""
    arch: str = "mlp"
    """'mlp' (the seed's fully connected nets) or 'conv' (strided convolutions)."""
    latent_dim: int = 32
    """Size of the code z."""
    hidden: tuple[int, ...] = (512, 256)
    """MLP hidden widths, encoder order (the decoder mirrors them)."""
    channels: tuple[int, ...] = (32, 64)
    """Conv channels of the two stride-2 stages (28 -> 14 -> 7); the decoder mirrors them."""
    conv_fc: int = 512
    """Conv nets: width of the fully connected layer between the feature map and z (0 = none)."""
    image_size: int = 28
    """Side of the square images (conv nets: divisible by 4)."""
    image_channels: int = 1
    """1 for grey images, 3 for colour."""

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.image_channels, self.image_size, self.image_size

    @property
    def pixels(self) -> int:
        return self.image_channels * self.image_size ** 2

    def __post_init__(self):
        if self.kind not in ("ae", "vae"):
            raise ValueError(f"model.kind must be 'ae' or 'vae', got {self.kind!r}")
        if self.arch not in ("mlp", "conv"):
            raise ValueError(f"model.arch must be 'mlp' or 'conv', got {self.arch!r}")
        if self.latent_dim < 1:
            raise ValueError(f"model.latent_dim must be >= 1, got {self.latent_dim}")
        if self.arch == "conv" and len(self.channels) != 2:
            raise ValueError(f"model.channels must list 2 widths for arch='conv', got {self.channels}")
        if self.image_size < 4 or (self.arch == "conv" and self.image_size % 4):
            raise ValueError(f"model.image_size must be >= 4 (and divisible by 4 for arch='conv'), got "
                             f"{self.image_size}")


def mlp(widths: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """out_dim=None: stop at the last hidden layer (ReLU'd), which a VAE feeds to fc_mu / fc_logvar."""

    def __init__(self, cfg: ModelConfig, out_dim: int | None):
        super().__init__()
        self.net = (mlp([cfg.pixels, *cfg.hidden, out_dim]) if out_dim
                    else nn.Sequential(mlp([cfg.pixels, *cfg.hidden]), nn.ReLU()))
        self.out_dim = out_dim or cfg.hidden[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, S, S) -> (B, out)
        return self.net(x.flatten(1))


class MLPDecoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.shape = cfg.image_shape
        self.net = mlp([cfg.latent_dim, *reversed(cfg.hidden), cfg.pixels])

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # (B, d) -> logits (B, C, S, S)
        return self.net(z).view(-1, *self.shape)


class ConvEncoder(nn.Module):
    """out_dim=None: stop at the (ReLU'd) fully connected features, as MLPEncoder does."""

    def __init__(self, cfg: ModelConfig, out_dim: int | None):
        super().__init__()
        c1, c2 = cfg.channels
        self.features = nn.Sequential(
            nn.Conv2d(cfg.image_channels, c1, 4, stride=2, padding=1), nn.ReLU(),  # (B, c1, 14, 14) at 28 px
            nn.Conv2d(c1, c2, 4, stride=2, padding=1), nn.ReLU(),                  # (B, c2, 7, 7)
            nn.Flatten(),
        )
        flat = c2 * (cfg.image_size // 4) ** 2
        layers: list[nn.Module] = [nn.Linear(flat, cfg.conv_fc), nn.ReLU()] if cfg.conv_fc else []
        width = cfg.conv_fc or flat
        if out_dim:
            layers.append(nn.Linear(width, out_dim))
        self.head = nn.Sequential(*layers)
        self.out_dim = out_dim or width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ConvDecoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        c1, c2 = cfg.channels
        self.c2, self.side = c2, cfg.image_size // 4
        flat = c2 * self.side ** 2
        self.fc = (nn.Sequential(nn.Linear(cfg.latent_dim, cfg.conv_fc), nn.ReLU(), nn.Linear(cfg.conv_fc, flat),
                                 nn.ReLU())
                   if cfg.conv_fc else nn.Sequential(nn.Linear(cfg.latent_dim, flat), nn.ReLU()))
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1), nn.ReLU(),  # (B, c1, 14, 14)
            nn.ConvTranspose2d(c1, cfg.image_channels, 4, stride=2, padding=1),  # (B, 1, 28, 28) logits at 28 px
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.fc(z).view(-1, self.c2, self.side, self.side))


def _encoder(cfg: ModelConfig, out_dim: int | None) -> nn.Module:
    return MLPEncoder(cfg, out_dim) if cfg.arch == "mlp" else ConvEncoder(cfg, out_dim)


def _decoder(cfg: ModelConfig) -> nn.Module:
    return MLPDecoder(cfg) if cfg.arch == "mlp" else ConvDecoder(cfg)


class Autoencoder(nn.Module):
    """x -> z -> logits. The seed's MLP is ModelConfig(arch='mlp', hidden=(512, 256), latent_dim=32)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = _encoder(cfg, cfg.latent_dim)
        self.decoder = _decoder(cfg)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1]."""
        return torch.sigmoid(self.decoder(z))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(x)
        return self.decoder(z), z  # logits (B, C, S, S), code (B, d)


class VAE(nn.Module):
    """Encoder -> (fc_mu, fc_logvar) -> reparameterised z -> decoder logits; prior N(0, I)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = _encoder(cfg, None)
        self.fc_mu = nn.Linear(self.encoder.out_dim, cfg.latent_dim)
        self.fc_logvar = nn.Linear(self.encoder.out_dim, cfg.latent_dim)
        self.decoder = _decoder(cfg)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return self.fc_mu(h), self.fc_logvar(h)

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        # z = mu + sigma * eps keeps z differentiable in (mu, logvar) (Kingma & Welling 2014, eq. 10)
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Bernoulli means in [0, 1]."""
        return torch.sigmoid(self.decoder(z))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        return self.decoder(self.reparameterize(mu, logvar)), mu, logvar

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images from the prior, as Bernoulli means (B, C, S, S)."""
        device = self.fc_mu.weight.device
        z = torch.randn(n, self.cfg.latent_dim, generator=generator).to(device)
        return self.decode(z)


def build_model(cfg: ModelConfig) -> nn.Module:
    return VAE(cfg) if cfg.kind == "vae" else Autoencoder(cfg)


@torch.no_grad()
def interpolate(model: nn.Module, x_a: torch.Tensor, x_b: torch.Tensor, steps: int = 10) -> torch.Tensor:
    """Decode a straight line between the codes (posterior means for a VAE) of two images: (steps, C, S, S)."""
    code = (lambda x: model.encode(x)[0]) if isinstance(model, VAE) else model.encode
    z_a, z_b = code(x_a[None]), code(x_b[None])
    t = torch.linspace(0, 1, steps, device=z_a.device)[:, None]
    return model.decode((1 - t) * z_a + t * z_b)
