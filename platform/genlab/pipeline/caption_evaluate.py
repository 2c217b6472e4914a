"""Score a caption-world generator with the compositional judge on one of the fixed prompt splits
(`genlab.data.caption_prompts`): per category the absolute score, the judge's score on real canvases of the same
prompts (test-split objects), and their ratio (the relative score the bars of issue 38 are on)."""

from __future__ import annotations

import functools
from typing import Callable

import torch

from genlab.data.caption_prompts import load_prompts, render_prompts
from genlab.data.captions import tokenize
from genlab.eval.compositional import relative_scores, score_prompts
from genlab.eval.fld import frechet_distance_of_features

Generate = Callable[[torch.Tensor, int], torch.Tensor]
"""(tokens (B, L), seed) -> images (B, 3, 32, 32) in [0, 1]."""


def score_generator(generate: Generate, judge, split: str, n: int | None = None, seed: int = 0,
                    batch: int = 100) -> dict:
    """The judge's verdicts on one generated image per prompt of `split` (its first `n` prompts), with the real
    ceiling, the relative scores and the realism Frechet distance (judge features) against the real canvases."""
    prompts, tokens, real_feats, ceiling = _real_side(judge, split, n, seed)
    images = torch.cat([generate(tokens[s:s + batch], seed + s) for s in range(0, len(prompts), batch)])
    generated = score_prompts(prompts, judge.read(images))
    return {"split": split, "n": len(prompts), "absolute": {k: v["score"] for k, v in generated.items()},
            "real_ceiling": {k: v["score"] for k, v in ceiling.items()},
            "relative": relative_scores(generated, ceiling), "counts": {k: v["n"] for k, v in generated.items()},
            "realism_fd": frechet_distance_of_features(real_feats, judge.features(images))}


@functools.lru_cache(maxsize=8)
def _real_side(judge, split: str, n: int | None, seed: int):
    """What does not change between calls (every epoch scores the same prompts): the prompts, their tokens, the
    judge features of the real canvases (rendering loads and resizes both datasets) and the judge's ceiling."""
    prompts = load_prompts(split)[:n]
    real, _ = render_prompts(prompts, seed=seed)
    return (prompts, tokenize([p.text for p in prompts]), judge.features(real),
            score_prompts(prompts, judge.read(real)))
