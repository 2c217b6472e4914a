"""Prompts naming a digit, written by the caption templates of chapter 5.7 (`genlab.data.captions`).

The prior learns from every prompt the training templates can write for a digit, with any colour, size and
position: the pipeline draws the digit (grey, 28x28) and nothing else, so those words must not move it. The
faithfulness bar asks prompts of the templates held out from CLIP's training and from the prior's.
"""

from __future__ import annotations

import itertools

import numpy as np

from genlab.data.captions import (COLOUR_NAMES, DIGITS, HELDOUT_TEMPLATES_1, POSITIONS, SYNONYMS, TEMPLATES_1)

SIZES = ("large", "small")


def _prompts(digit: int, templates) -> list[str]:
    """Every distinct prompt `templates` write for `digit` (all synonyms, colours, sizes, positions)."""
    out = set()
    for template, cls, colour, size, pos in itertools.product(templates, SYNONYMS[DIGITS[digit]], COLOUR_NAMES,
                                                              SIZES, POSITIONS):
        obj = {"class": digit, "cls": cls, "colour": colour, "size": size, "pos": pos}
        out.add(template(obj, None)[0])
    return sorted(out)


def digit_prompts(split: str = "train") -> list[list[str]]:
    """Per digit 0-9, the prompts of the training templates ('train') or the held-out ones ('heldout')."""
    if split not in ("train", "heldout"):
        raise ValueError(f"prompt split must be 'train' or 'heldout', got {split!r}")
    templates = TEMPLATES_1 if split == "train" else HELDOUT_TEMPLATES_1
    return [_prompts(d, templates) for d in range(len(DIGITS))]


def balanced_prompts(n_per_digit: int, split: str = "heldout", seed: int = 0) -> tuple[list[str], list[int]]:
    """(prompts, the digit each names): `n_per_digit` prompts per digit drawn from `split`'s prompts."""
    rng = np.random.default_rng(seed)
    prompts, digits = [], []
    for d, pool in enumerate(digit_prompts(split)):
        prompts += [pool[i] for i in rng.integers(len(pool), size=n_per_digit)]
        digits += [d] * n_per_digit
    return prompts, digits
