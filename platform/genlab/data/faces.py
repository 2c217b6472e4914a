"""Synthetic colour faces: the offline face set that tests and CPU demos use where CelebA cannot be downloaded.

Each 64x64 RGB image is a cartoon portrait drawn at 128x128 with PIL and downsampled (antialiased): a background
gradient, shoulders, a face ellipse with one of six skin tones, hair in one of five colours (short or long),
eyes with coloured irises, eyebrows, a nose, a mouth from a frown to a smile, glasses on some. Position, size and
every colour are jittered, so no two faces are alike; the label is the hair colour (a class that a classifier can
learn, for the FLD-style score of samples). Seeded: the same (split, n, seed) always gives the same images.
These are not photographs: a model that draws them shows the DCGAN's mechanics on faces, not CelebA quality.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw

SIZE = 64
SKIN = [(255, 224, 196), (241, 194, 160), (224, 172, 128), (198, 134, 96), (141, 85, 54), (94, 58, 36)]
HAIR = {"black": (25, 22, 22), "brown": (96, 60, 32), "blonde": (226, 196, 120), "red": (170, 60, 30),
        "grey": (165, 165, 170)}
HAIR_NAMES = tuple(HAIR)
IRIS = [(60, 100, 170), (70, 130, 80), (95, 60, 30), (40, 30, 25)]
SPLIT_SEED = {"train": 0, "test": 1_000_003}


def _jitter(rgb, rng: np.random.Generator, amount: int = 14) -> tuple[int, ...]:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in rgb)


def draw_face(rng: np.random.Generator, hair_class: int, size: int = SIZE) -> np.ndarray:
    """One face, (size, size, 3) uint8, its hair colour HAIR_NAMES[hair_class]."""
    s = 128  # drawn at 128 px, then downsampled: smooth edges at any output size
    top, bottom = _jitter(rng.integers(40, 230, 3), rng, 0), _jitter(rng.integers(40, 230, 3), rng, 0)
    ramp = np.linspace(0, 1, s)[:, None, None]
    canvas = (np.array(top) * (1 - ramp) + np.array(bottom) * ramp) * np.ones((1, s, 1))
    img = Image.fromarray(canvas.astype(np.uint8))
    d = ImageDraw.Draw(img)
    cx, cy = 64 + rng.integers(-7, 8), 62 + rng.integers(-6, 7)
    rx, ry = rng.integers(26, 34), rng.integers(33, 41)
    skin, hair = _jitter(SKIN[rng.integers(len(SKIN))], rng, 8), _jitter(HAIR[HAIR_NAMES[hair_class]], rng, 12)
    shirt = _jitter(rng.integers(20, 235, 3), rng, 0)
    long_hair = rng.random() < 0.45
    if long_hair:  # behind the face, down to the jaw
        d.rounded_rectangle([cx - rx - 8, cy - ry - 8, cx + rx + 8, cy + ry * 0.75], radius=rx // 2, fill=hair)
    d.ellipse([cx - rx - 22, cy + ry - 6, cx + rx + 22, cy + ry + 70], fill=shirt)  # shoulders
    d.rectangle([cx - rx // 3, cy + ry - 14, cx + rx // 3, cy + ry + 8], fill=_jitter(skin, rng, 4))  # neck
    d.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=skin)
    # hair on top: the upper part of a slightly larger ellipse, the fringe line jittered
    d.chord([cx - rx - 4, cy - ry - 8, cx + rx + 4, cy + ry * 0.6], 180, 360, fill=hair)
    fringe = cy - ry * rng.uniform(0.35, 0.6)
    d.rectangle([cx - rx - 4, cy - ry - 8, cx + rx + 4, fringe], fill=hair)
    d.ellipse([cx - rx + 3, fringe - 10, cx + rx - 3, fringe + 8], fill=skin)
    # eyes, brows, nose, mouth
    ey, ex, er = cy - ry * 0.05, rx * rng.uniform(0.36, 0.46), rng.uniform(5, 7)
    iris = _jitter(IRIS[rng.integers(len(IRIS))], rng, 10)
    for side in (-1, 1):
        x = cx + side * ex
        d.ellipse([x - er * 1.4, ey - er, x + er * 1.4, ey + er], fill=(245, 245, 245))
        d.ellipse([x - er * 0.7, ey - er * 0.7, x + er * 0.7, ey + er * 0.7], fill=iris)
        d.ellipse([x - er * 0.3, ey - er * 0.3, x + er * 0.3, ey + er * 0.3], fill=(10, 10, 10))
        tilt = rng.uniform(-3, 3) * side
        d.line([x - er * 1.6, ey - er * 1.9 + tilt, x + er * 1.6, ey - er * 1.9 - tilt], fill=hair, width=3)
    if rng.random() < 0.2:  # glasses
        frame = _jitter((30, 30, 30), rng, 20)
        for side in (-1, 1):
            x = cx + side * ex
            d.ellipse([x - er * 2, ey - er * 1.6, x + er * 2, ey + er * 1.6], outline=frame, width=2)
        d.line([cx - ex + er * 2, ey, cx + ex - er * 2, ey], fill=frame, width=2)
    nose = tuple(int(c * 0.8) for c in skin)
    d.line([cx, ey + 4, cx - 3, cy + ry * 0.3, cx + 2, cy + ry * 0.32], fill=nose, width=2)
    my, mw, smile = cy + ry * 0.55, rx * rng.uniform(0.35, 0.55), rng.uniform(-0.6, 1.0)
    lips = _jitter((185, 70, 75), rng, 20)
    box = [cx - mw, my - 8 * abs(smile) - 1, cx + mw, my + 8 * abs(smile) + 1]
    d.arc(box, 0 if smile >= 0 else 180, 180 if smile >= 0 else 360, fill=lips, width=3)
    return np.asarray(img.resize((size, size), Image.LANCZOS))


def make_faces(n: int, split: str = "train", seed: int = 0, size: int = SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """n faces: uint8 (n, 3, size, size) and hair-colour labels int64 (n,), classes balanced. The train and test
    splits draw from disjoint random streams."""
    if split not in SPLIT_SEED:
        raise ValueError(f"unknown split {split!r}; choose one of {tuple(SPLIT_SEED)}")
    rng = np.random.default_rng(seed + SPLIT_SEED[split])
    labels = np.arange(n) % len(HAIR_NAMES)
    rng.shuffle(labels)
    images = np.stack([draw_face(rng, int(y), size) for y in labels]) if n else np.zeros((0, size, size, 3))
    return (torch.from_numpy(images.astype(np.uint8)).permute(0, 3, 1, 2).contiguous(),
            torch.from_numpy(labels.astype(np.int64)))
