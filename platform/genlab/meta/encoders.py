"""The Conv-4 encoder of Vinyals et al. (2016) / Snell et al. (2017): four [conv 3x3 (64), BatchNorm, ReLU,
max-pool 2] blocks; 28x28 -> 64 x 1 x 1."""

from __future__ import annotations

import torch
from torch import nn


def conv_block(cin: int, cout: int, running_stats: bool = True) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout, track_running_stats=running_stats),
                         nn.ReLU(), nn.MaxPool2d(2))


class Conv4(nn.Module):
    """Feature extractor; with `n_classes` a linear head on top (MAML's classifier). `running_stats=False`
    normalises with the statistics of the batch at hand, in training and testing alike (as MAML does)."""

    def __init__(self, in_channels: int = 1, hidden: int = 64, n_classes: int | None = None,
                 running_stats: bool = True):
        super().__init__()
        self.features = nn.Sequential(conv_block(in_channels, hidden, running_stats),
                                      *[conv_block(hidden, hidden, running_stats) for _ in range(3)])
        self.head = nn.Linear(hidden, n_classes) if n_classes else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, D) or (B, n_classes)
        z = self.features(x).mean(dim=(2, 3))  # 28x28 ends at 1x1; larger inputs are averaged
        return self.head(z) if self.head is not None else z
