"""A small text transformer over the caption world's BPE tokens, trained together with the generator that reads
it (issue 38): the CLIP text tower's pooled vector loses which colour goes with which object and reads the
held-out "to the right of" backwards, so the text-conditioned diffusion model gets the whole token sequence
(cross-attention, as latent diffusion conditions on its text encoder's tokens) from an encoder that learns what
the generator needs. Pure torch; tokens come from `genlab.data.captions.tokenize` (open_clip's BPE, 32 per
caption, 0 = padding)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class TokenEncoderConfig:
    vocab_size: int = 49408
    """open_clip's BPE vocabulary."""
    context_length: int = 32
    """Tokens per caption (`genlab.data.captions.CONTEXT_LENGTH`)."""
    width: int = 128
    """Feature size of each token (the U-Net's context_dim)."""
    layers: int = 2
    heads: int = 4


class TokenEncoder(nn.Module):
    """(B, L) int tokens -> (B, L, width) features; padding positions come out as zeros. Learned positions make
    "a red 7 on the left and a blue 2 on the right" differ from the same words in another order."""

    def __init__(self, cfg: TokenEncoderConfig = TokenEncoderConfig()):
        super().__init__()
        self.cfg = cfg
        self.token = nn.Embedding(cfg.vocab_size, cfg.width)
        self.position = nn.Parameter(torch.randn(cfg.context_length, cfg.width) * 0.02)
        layer = nn.TransformerEncoderLayer(cfg.width, cfg.heads, 4 * cfg.width, dropout=0.0, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.transformer = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.width)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() != 2 or tokens.shape[1] > self.cfg.context_length:
            raise ValueError(f"tokens must be (B, L <= {self.cfg.context_length}), got {tuple(tokens.shape)}")
        pad = tokens == 0  # (B, L)
        h = self.token(tokens) + self.position[:tokens.shape[1]]
        h = self.norm(self.transformer(h, src_key_padding_mask=pad))
        return h.masked_fill(pad[..., None], 0.0)
