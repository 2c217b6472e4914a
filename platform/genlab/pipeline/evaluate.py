"""The pipeline's bars, measured with the project's reference MNIST classifier (which no stage ever saw):
prompt faithfulness on held-out templates, FLD ratio of refined images against the raw decodes of the same
latents, class-histogram entropy over class-balanced prompts, and within-prompt precision/recall."""

from __future__ import annotations

import time

import torch

from genlab.data.mnist import load_dataset
from genlab.eval.fld_reference import reference_classifier
from genlab.eval.fld import features
from genlab.eval.sample_quality import precision_recall, sample_quality
from genlab.pipeline.pipeline import DEFAULT_TEMPERATURE, TextToImagePipeline
from genlab.pipeline.prompts import balanced_prompts, digit_prompts

DIVERSITY_IMAGES = 100


def generate_many(pipe: TextToImagePipeline, prompts: list[str], num_images: int = 1, seed: int = 0,
                  batch: int = 64,
                  temperature: float = DEFAULT_TEMPERATURE) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(refined, raw, seconds) for many prompts, `batch` images per call, each call seeded from `seed`."""
    per_call = max(1, batch // num_images)
    refined, raw = [], []
    t0 = time.perf_counter()
    for i, s in enumerate(range(0, len(prompts), per_call)):
        out = pipe(prompts[s:s + per_call], num_images, seed=seed + i, temperature=temperature)
        refined.append(out.images)
        raw.append(out.raw)
    return torch.cat(refined), torch.cat(raw), time.perf_counter() - t0


def evaluate_pipeline(pipe: TextToImagePipeline, n_per_digit: int = 1000, seed: int = 0, quick: bool = False,
                      temperature: float = DEFAULT_TEMPERATURE) -> dict:
    """The bars on 10 x `n_per_digit` images, one per held-out-template prompt, class-balanced."""
    prompts, digits = balanced_prompts(n_per_digit, "heldout", seed)
    requested = torch.tensor(digits)
    refined, raw, seconds = generate_many(pipe, prompts, seed=seed, temperature=temperature)
    out = {"n_images": len(prompts), "images_per_s": len(prompts) / seconds, "temperature": temperature}
    for name, images in (("refined", refined), ("raw", raw)):
        q = sample_quality(images, "mnist", quick, requested=requested)
        out |= {f"{name}/{k}": q[k] for k in ("fld", "fld_ratio", "precision", "recall", "class_entropy_frac",
                                               "class_agreement", "class_histogram")}
    out["refiner_fld_reduction"] = 1 - out["refined/fld_ratio"] / out["raw/fld_ratio"]
    out |= within_prompt_diversity(pipe, seed=seed, quick=quick, temperature=temperature)
    return out


def within_prompt_diversity(pipe: TextToImagePipeline, seed: int = 0, quick: bool = False,
                            temperature: float = DEFAULT_TEMPERATURE) -> dict:
    """Per digit: one held-out-template prompt, 100 images, improved precision/recall against 100 real test
    images of that digit in the classifier's feature space (k=3); the mean over digits too."""
    classifier, _ = reference_classifier("mnist", quick=quick)
    test_images, test_labels = load_dataset("mnist", "test")
    pools = digit_prompts("heldout")
    out, recalls, precisions = {}, [], []
    for d, pool in enumerate(pools):
        prompt = pool[len(pool) // 2]
        images = pipe(prompt, DIVERSITY_IMAGES, seed=seed + d, temperature=temperature).images
        real = test_images[test_labels == d][:DIVERSITY_IMAGES]
        p, r = precision_recall(features(classifier, real), features(classifier, images))
        out[f"diversity/{d}"] = {"prompt": prompt, "precision": p, "recall": r}
        precisions.append(p)
        recalls.append(r)
    out["diversity/mean_precision"] = sum(precisions) / len(precisions)
    out["diversity/mean_recall"] = sum(recalls) / len(recalls)
    return out
