"""Frechet LeNet Distance: FID's formula on the penultimate features of a small MNIST classifier we train.

No Inception weights can be had offline, and Inception features are a poor fit for 28x28 digits anyway; a LeNet
trained to >= 99% test accuracy gives features that separate digit shapes (the "FLD" of several MNIST papers).
torchmetrics' FrechetInceptionDistance does the statistics, on our network's features (float32 network, float64
statistics).
The classifier also labels generated samples (class-histogram entropy, conditional accuracy).
For colour sets (`genlab.data.images`) the same network takes 3 channels and pools its last feature map to 7x7:
an offline stand-in for FID (Inception features need a download), trained on the set's own labels; a number
says which one it uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance

from genlab.core.checkpoint import register_family
from genlab.core.config import from_dict
from genlab.eval.reconstruction import to_float

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
COLOUR_MEAN, COLOUR_STD = 0.5, 0.25


@dataclass
class ClassifierConfig:
    channels: tuple[int, int] = (32, 64)
    """Conv widths of the two conv blocks."""
    features: int = 128
    """Width of the penultimate layer: the FLD feature space."""
    dropout: float = 0.25
    """Dropout before the last layer."""
    in_channels: int = 1
    """1 for the grey sets, 3 for colour ones."""
    num_classes: int = 10
    """Classes of the set it is trained on."""


class LeNet(nn.Module):
    def __init__(self, cfg: ClassifierConfig = ClassifierConfig()):
        super().__init__()
        c1, c2 = cfg.channels
        self.body = nn.Sequential(
            nn.Conv2d(cfg.in_channels, c1, 3, padding=1), nn.BatchNorm2d(c1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.BatchNorm2d(c2), nn.ReLU(),
            # (B, c2, 7, 7) at 28 px, where the adaptive pool is the identity; larger images pooled to 7x7 (one
            # Sequential: the later layers keep their state-dict names of the grey-only network)
            nn.Sequential(nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(7)),
            nn.Flatten(), nn.Linear(c2 * 49, cfg.features), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(cfg.features, cfg.num_classes))
        self.num_features = cfg.features
        self.num_classes = cfg.num_classes
        self.mean, self.std = (MNIST_MEAN, MNIST_STD) if cfg.in_channels == 1 else (COLOUR_MEAN, COLOUR_STD)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x: images in [0, 1], (B, C, H, W) -> (B, features)."""
        return self.body((x - self.mean) / self.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build_classifier(config: dict) -> LeNet:
    return LeNet(from_dict(ClassifierConfig, config.get("model", {})))


register_family("eval.fld", build_classifier)


class _Given(nn.Module):
    """The feature extractor torchmetrics is handed: the features are computed before (by `features`, once per
    image set: the test set's are cached), so it passes them through, in float64 for the statistics."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return feats.double()


@torch.no_grad()
def features(classifier: LeNet, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Penultimate features (N, F), float32, of uint8 (N, 28, 28) / (N, C, H, W) or float (N, C, H, W) images
    in [0, 1]."""
    classifier.eval()
    device = next(classifier.parameters()).device
    return torch.cat([classifier.features(to_float(images[s:s + batch_size]).to(device)).float().cpu()
                      for s in range(0, len(images), batch_size)])


def frechet_distance_of_features(real: torch.Tensor, fake: torch.Tensor) -> float:
    """FID's formula (torchmetrics' statistics, float64) on two feature sets (N, F)."""
    # sync_on_compute=False: the statistics are this process's own; inside a multi-worker run rank 0 scores
    # alone, and torchmetrics' default sync would wait forever for the other ranks to join its all-gather
    metric = FrechetInceptionDistance(feature=_Given(real.shape[1]), sync_on_compute=False)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    return float(metric.compute())


def frechet_distance(classifier: LeNet, real: torch.Tensor, fake: torch.Tensor, batch_size: int = 1000) -> float:
    """FLD between two image sets (uint8 (N, 28, 28) or float (N, 1, 28, 28) in [0, 1])."""
    return frechet_distance_of_features(features(classifier, real, batch_size), features(classifier, fake, batch_size))


@torch.no_grad()
def predict(classifier: LeNet, images: torch.Tensor, batch_size: int = 1000,
            feats: torch.Tensor | None = None) -> torch.Tensor:
    """Predicted classes; from the images' `feats` (by `features`) when already computed."""
    classifier.eval()
    device = next(classifier.parameters()).device
    if feats is not None:
        return classifier.head(feats.to(device)).argmax(1).cpu()
    return torch.cat([classifier(to_float(images[s:s + batch_size]).to(device)).argmax(1).cpu()
                      for s in range(0, len(images), batch_size)])


def class_entropy(labels: torch.Tensor, num_classes: int = 10) -> float:
    """Entropy (nats) of the predicted-class histogram; ln(num_classes) (2.303 for 10) means perfect coverage."""
    p = torch.bincount(labels, minlength=num_classes).double() / len(labels)
    return abs(float(-(p[p > 0] * p[p > 0].log()).sum()))  # abs: no '-0.0' for one class


def train_classifier(train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
                     cfg: ClassifierConfig = ClassifierConfig(), epochs: int = 3, batch_size: int = 128,
                     lr: float = 1e-3, seed: int = 0, max_steps: int | None = None,
                     progress: bool = False) -> tuple[LeNet, float]:
    """Train the FLD classifier with light shift augmentation; returns (model, test accuracy)."""
    torch.manual_seed(seed)
    model = LeNet(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    images, labels = train
    steps_per_epoch = len(images) // batch_size
    total = min(max_steps or math.inf, epochs * steps_per_epoch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr * 3, total_steps=int(total))
    gen = torch.Generator().manual_seed(seed)
    step = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=int(total), desc="FLD classifier")
    while step < total:
        order = torch.randperm(len(images), generator=gen)
        for s in range(0, steps_per_epoch * batch_size, batch_size):
            if step >= total:
                break
            x = to_float(images[order[s:s + batch_size]])
            x = _random_shift(x, gen)
            loss = F.cross_entropy(model.train()(x), labels[order[s:s + batch_size]])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if bar:
                bar.update()
    if bar:
        bar.close()
    accuracy = float((predict(model, test[0]) == test[1]).float().mean())
    return model.eval(), accuracy


def _random_shift(x: torch.Tensor, gen: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    dx, dy = (int(v) for v in torch.randint(-max_shift, max_shift + 1, (2,), generator=gen))
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))
