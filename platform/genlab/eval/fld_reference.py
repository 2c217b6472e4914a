"""The project's reference FLD classifier: trained once per dataset, cached as a genlab checkpoint."""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import torch

from genlab.core.checkpoint import load_model, save_checkpoint
from genlab.core.config import load_json, save_json, to_dict
from genlab.data.mnist import default_root, load_dataset
from genlab.eval.fld import (ClassifierConfig, LeNet, features, frechet_distance,
                              frechet_distance_of_features, train_classifier)

log = logging.getLogger(__name__)
MIN_ACCURACY = 0.99


def reference_dir(dataset: str = "mnist", root: str | Path | None = None, quick: bool = False) -> Path:
    return (Path(root) if root else default_root()) / "fld" / f"lenet-{dataset}{'-quick' if quick else ''}"


def train_reference_classifier(train, test, out_dir: Path | None = None, epochs: int = 4, seed: int = 0,
                               progress: bool = True, max_steps: int | None = None) -> dict:
    """Train the classifier, measure its test accuracy and the FLD floor (10k train images vs the test set)."""
    images, labels = train
    colour = images.dim() == 4  # (N, C, H, W) colour sets; (N, 28, 28) MNIST and Fashion-MNIST
    cfg = ClassifierConfig(in_channels=images.shape[1], num_classes=int(labels.max()) + 1) if colour else (
        ClassifierConfig())
    model, accuracy = train_classifier(train, test, cfg, epochs=epochs, seed=seed, progress=progress,
                                       max_steps=max_steps)
    floor = frechet_distance(model, test[0], train[0][:len(test[0])])
    info = {"test_accuracy": accuracy, "fld_floor_train_vs_test": floor, "epochs": epochs, "seed": seed,
            "n_floor": len(test[0])}
    if accuracy < MIN_ACCURACY and not colour:  # the bar of the grey sets' FLD
        log.warning("FLD classifier reached %.4f test accuracy, below the %.2f the FLD needs", accuracy, MIN_ACCURACY)
    if out_dir is not None:
        save_checkpoint(out_dir, family="eval.fld", config={"model": to_dict(cfg), **info}, model=model)
        save_json(info, Path(out_dir) / "info.json")
        (Path(out_dir) / "test_features.pt").unlink(missing_ok=True)  # an earlier classifier's
        reference_classifier.cache_clear()
        reference_test_features.cache_clear()
    return info


@functools.lru_cache(maxsize=4)
def reference_classifier(dataset: str = "mnist", root: str | Path | None = None,
                         quick: bool = False) -> tuple[LeNet, dict]:
    """(classifier, info) from the cache, training it first (about 2 minutes here) when missing; loaded once per
    process.

    quick=True: a 200-step classifier (~98% accuracy) for smoke runs, cached apart from the reference one.
    """
    out = reference_dir(dataset, root, quick)
    if not (out / "info.json").exists():
        log.info("training the FLD %s classifier for %s into %s", "quick" if quick else "reference", dataset, out)
        train_reference_classifier(load_dataset(dataset, "train", root), load_dataset(dataset, "test", root), out,
                                   epochs=1 if quick else 4, max_steps=200 if quick else None, progress=False)
    return load_model(out).eval(), load_json(out / "info.json")


@functools.lru_cache(maxsize=4)
def reference_test_features(dataset: str = "mnist", root: str | Path | None = None,
                            quick: bool = False) -> torch.Tensor:
    """The test set's features (10k x F) under the reference classifier: every FLD and precision/recall compares
    with them, so they are computed once and kept next to the classifier (an atomic write: parallel processes
    may make them at once)."""
    classifier, _ = reference_classifier(dataset, root, quick)
    path = reference_dir(dataset, root, quick) / "test_features.pt"
    if path.exists():
        return torch.load(path)
    feats = features(classifier, load_dataset(dataset, "test", root)[0])
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    torch.save(feats, tmp)
    os.replace(tmp, path)
    return feats


def fld_of_samples(samples: torch.Tensor, dataset: str = "mnist", root: str | Path | None = None,
                   quick: bool = False, feats: torch.Tensor | None = None) -> dict:
    """FLD of generated samples against the test set, with the floor and their ratio; `feats`: the samples'
    features (by `features`) when the caller has them already."""
    classifier, info = reference_classifier(dataset, root, quick)
    feats = features(classifier, samples) if feats is None else feats
    fld = frechet_distance_of_features(reference_test_features(dataset, root, quick), feats)
    return {"fld": fld, "fld_floor": info["fld_floor_train_vs_test"],
            "fld_ratio": fld / info["fld_floor_train_vs_test"], "n_samples": len(samples)}
