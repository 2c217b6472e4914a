"""A small DDPM U-Net (Ho et al. 2020): residual blocks with GroupNorm, a sinusoidal time embedding added in
every block, self-attention at low resolution, skip connections, and an optional class embedding with a
'null' class for classifier-free guidance. Sizes come from UNetConfig; any input size works (odd sizes too:
the up path resizes to each skip's shape)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class UNetConfig:
    channels: int = 32
    """Width of the first level; level i has channels * channel_mults[i]."""
    channel_mults: tuple[int, ...] = (1, 2, 2)
    """One entry per resolution level (28 -> 14 -> 7 for three levels)."""
    num_res_blocks: int = 1
    """Residual blocks per level on the down path (the up path has one more, as in DDPM)."""
    attention_levels: tuple[int, ...] = (-1,)
    """Levels (0 = full resolution, -1 = the lowest) whose blocks are followed by self-attention; the middle
    always has one."""
    attention_heads: int = 4
    """Heads of each self-attention layer."""
    dropout: float = 0.0
    """Dropout inside residual blocks."""
    groups: int = 8
    """GroupNorm groups (reduced to a divisor of the channel count where needed)."""
    num_classes: int = 0
    """0 = unconditional; > 0 adds a class embedding with an extra 'null' class (index num_classes)."""
    cond_dim: int = 0
    """> 0: conditioned on a (B, cond_dim) vector instead, e.g. a CLIP text embedding (an MLP adds it to the time
    embedding); the all-zero vector is the 'null' condition of classifier-free guidance."""
    context_dim: int = 0
    """> 0: conditioned on a token sequence (B, L, context_dim) instead (latent diffusion's text conditioning,
    Rombach et al. 2022): every attention block also cross-attends to the tokens, and their mean goes into the
    time embedding as a pooled vector does; the all-zero sequence is the 'null' condition."""
    in_channels: int = 1
    """Image channels."""
    image_size: int = 28
    """Side of the square images it denoises (what samplers draw); each level halves it."""

    def __post_init__(self):
        if self.channels < 1 or not self.channel_mults or min(self.channel_mults) < 1:
            raise ValueError(f"channels and channel_mults must be positive, got {self.channels}, "
                             f"{self.channel_mults}")
        if sum(map(bool, (self.num_classes, self.cond_dim, self.context_dim))) > 1:
            raise ValueError("a U-Net is conditioned on classes (num_classes), vectors (cond_dim) or token sequences "
                             "(context_dim): one of them, not several")
        n = len(self.channel_mults)
        bad = [lvl for lvl in self.attention_levels if not -n <= lvl < n]
        if bad:
            raise ValueError(f"attention_levels {bad} out of range for {len(self.channel_mults)} levels")


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Transformer-style sinusoidal embedding of (B,) timesteps -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    return F.pad(emb, (0, dim % 2))


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(channels, groups), channels)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = _norm(c_in, groups)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = _norm(c_out, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity: stabler early training
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Self-attention over the pixels, then (context_dim > 0) cross-attention from the pixels to the tokens of a
    context: where "red" and "left" can meet the pixels they describe."""

    def __init__(self, channels: int, heads: int, groups: int, context_dim: int = 0):
        super().__init__()
        if channels % heads:
            raise ValueError(f"attention over {channels} channels cannot be split into {heads} heads")
        self.heads = heads
        self.norm = _norm(channels, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self.cross = None
        if context_dim:
            self.cross = nn.ModuleDict({"norm": _norm(channels, groups), "q": nn.Conv2d(channels, channels, 1),
                                        "kv": nn.Linear(context_dim, 2 * channels),
                                        "proj": nn.Conv2d(channels, channels, 1)})
            nn.init.zeros_(self.cross["proj"].weight)
            nn.init.zeros_(self.cross["proj"].bias)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).transpose(-1, -2).unbind(1)
        out = F.scaled_dot_product_attention(q, k, v)  # (b, heads, hw, c/heads)
        x = x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))
        if self.cross is None:
            return x
        cr, d = self.cross, c // self.heads
        q = cr["q"](cr["norm"](x)).reshape(b, self.heads, d, h * w).transpose(-1, -2)  # (b, heads, hw, d)
        k, v = cr["kv"](context.to(x.dtype)).reshape(b, -1, 2, self.heads, d).permute(2, 0, 3, 1, 4)  # (b, heads, L, d)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=context_mask(context)[:, None, None, :])
        return x + cr["proj"](out.transpose(-1, -2).reshape(b, c, h, w))


def context_mask(context: torch.Tensor) -> torch.Tensor:
    """(B, L) True where a token is real: padding comes as all-zero features, and the first position is always
    kept so that the null (all-zero) sequence still has a key to attend to."""
    mask = context.abs().amax(-1) > 0
    mask[:, 0] = True
    return mask


class UNet(nn.Module):
    """eps_theta(x_t, t[, y]): (B, C, H, W), (B,) int timesteps, optional (B,) labels or (B, cond_dim) condition
    vectors -> (B, C, H, W)."""

    def __init__(self, cfg: UNetConfig = UNetConfig()):
        super().__init__()
        self.cfg = cfg
        ch, groups = cfg.channels, cfg.groups
        emb_dim = 4 * ch
        self.time_mlp = nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.class_emb = nn.Embedding(cfg.num_classes + 1, emb_dim) if cfg.num_classes else None
        pooled = cfg.cond_dim or cfg.context_dim
        self.cond_mlp = (nn.Sequential(nn.Linear(pooled, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
                         if pooled else None)
        self.stem = nn.Conv2d(cfg.in_channels, ch, 3, padding=1)

        self.down = nn.ModuleList()
        skips, c = [ch], ch
        for level, mult in enumerate(cfg.channel_mults):
            for _ in range(cfg.num_res_blocks):
                self.down.append(self._block(c, ch * mult, level, emb_dim))
                c = ch * mult
                skips.append(c)
            if level < len(cfg.channel_mults) - 1:
                self.down.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
        self.mid = nn.ModuleList([ResBlock(c, c, emb_dim, groups, cfg.dropout),
                                  AttentionBlock(c, cfg.attention_heads, groups, cfg.context_dim),
                                  ResBlock(c, c, emb_dim, groups, cfg.dropout)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mults))):
            for _ in range(cfg.num_res_blocks + 1):
                self.up.append(self._block(c + skips.pop(), ch * mult, level, emb_dim))
                c = ch * mult
            if level > 0:
                self.up.append(nn.Conv2d(c, c, 3, padding=1))  # after a nearest-neighbour resize
        self.out = nn.Sequential(_norm(c, groups), nn.SiLU(), nn.Conv2d(c, cfg.in_channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def _block(self, c_in: int, c_out: int, level: int, emb_dim: int) -> nn.Module:
        res = ResBlock(c_in, c_out, emb_dim, self.cfg.groups, self.cfg.dropout)
        if level in {lvl % len(self.cfg.channel_mults) for lvl in self.cfg.attention_levels}:
            return nn.ModuleList([res, AttentionBlock(c_out, self.cfg.attention_heads, self.cfg.groups,
                                                      self.cfg.context_dim)])
        return nn.ModuleList([res])

    @property
    def null_class(self) -> int:
        return self.cfg.num_classes

    def null_like(self, y: torch.Tensor) -> torch.Tensor:
        """The 'no condition' input of classifier-free guidance, shaped like the condition y."""
        return torch.zeros_like(y) if self.cond_mlp is not None else torch.full_like(y, self.null_class)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.cfg.channels))
        if self.class_emb is not None:
            if y is None:
                y = torch.full((len(x),), self.null_class, device=x.device, dtype=torch.long)
            emb = emb + self.class_emb(y)
        elif self.cfg.context_dim:
            if y is None:
                y = torch.zeros(len(x), 1, self.cfg.context_dim, device=x.device, dtype=x.dtype)
            if y.dim() != 3 or y.shape[0] != len(x) or y.shape[2] != self.cfg.context_dim:
                raise ValueError(f"this U-Net reads (B, L, {self.cfg.context_dim}) token sequences, got "
                                 f"{tuple(y.shape)}")
            mask = context_mask(y)[..., None].to(y.dtype)  # mean over the real tokens: length does not scale it
            emb = emb + self.cond_mlp(((y * mask).sum(1) / mask.sum(1)).to(emb.dtype))
        elif self.cond_mlp is not None:
            if y is None:
                y = torch.zeros(len(x), self.cfg.cond_dim, device=x.device, dtype=x.dtype)
            if y.shape != (len(x), self.cfg.cond_dim):
                raise ValueError(f"this U-Net reads (B, {self.cfg.cond_dim}) condition vectors, got {tuple(y.shape)}")
            emb = emb + self.cond_mlp(y.to(emb.dtype))
        elif y is not None:
            raise ValueError("this U-Net is unconditional (num_classes=0, cond_dim=0) but a condition was given")
        context = y if self.cfg.context_dim else None
        h = self.stem(x)
        hs = [h]
        for layer in self.down:
            h = self._run(layer, h, emb, context)
            hs.append(h)
        for layer in self.mid:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h, context)
        for layer in self.up:
            if isinstance(layer, nn.Conv2d):  # upsample to the next skip's size, then conv
                h = layer(F.interpolate(h, size=hs[-1].shape[-2:], mode="nearest"))
            else:
                h = self._run(layer, torch.cat([h, hs.pop()], dim=1), emb, context)
        return self.out(h)

    @staticmethod
    def _run(layer: nn.Module, h: torch.Tensor, emb: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        if isinstance(layer, nn.Conv2d):
            return layer(h)
        for sub in layer:
            h = sub(h, emb) if isinstance(sub, ResBlock) else sub(h, context)
        return h
