"""Quality of generated samples in the FLD classifier's feature space: FLD (and its ratio to the train-vs-test
floor), improved precision and recall (Kynkaanniemi et al. 2019), class-histogram entropy and, for
class-conditional samples, how often the classifier agrees with the requested class."""

from __future__ import annotations

import math
import time
from typing import Callable

import torch

from genlab.eval.fld import class_entropy, features, predict
from genlab.eval.fld_reference import fld_of_samples, reference_classifier, reference_test_features


def _kth_nn_radius(feats: torch.Tensor, k: int, chunk: int = 2000) -> torch.Tensor:
    """Distance from each point to its k-th nearest neighbour in the same set (itself excluded)."""
    radii = []
    for s in range(0, len(feats), chunk):
        d = torch.cdist(feats[s:s + chunk], feats)
        radii.append(d.kthvalue(k + 1, dim=1).values)  # the 1st 'neighbour' is the point itself
    return torch.cat(radii)


def _coverage(queries: torch.Tensor, support: torch.Tensor, radii: torch.Tensor, chunk: int = 2000) -> float:
    """Fraction of queries inside at least one support point's k-NN ball."""
    inside = []
    for s in range(0, len(queries), chunk):
        d = torch.cdist(queries[s:s + chunk], support)
        inside.append((d <= radii[None]).any(dim=1))
    return float(torch.cat(inside).double().mean())


def precision_recall(real_feats: torch.Tensor, fake_feats: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision (fakes on the real manifold) and recall (reals on the fake manifold), in float64."""
    real_feats, fake_feats = real_feats.double(), fake_feats.double()
    precision = _coverage(fake_feats, real_feats, _kth_nn_radius(real_feats, k))
    recall = _coverage(real_feats, fake_feats, _kth_nn_radius(fake_feats, k))
    return precision, recall


def sample_quality(samples: torch.Tensor, dataset: str = "mnist", quick: bool = False,
                   requested: torch.Tensor | None = None, pr_k: int = 3, inception: bool = False) -> dict:
    """All metrics of `samples` (float (N, C, H, W) in [0, 1] or uint8) against the test set.

    Precision/recall compare with as many test images as there are samples (at most the 10k test set). For a
    colour set the classifier is the offline stand-in for FID's (genlab.eval.fld); `inception`: also FID on
    Inception-v3 features against as many test images (`fid_inception`; needs the weights, genlab.eval.fid)."""
    classifier, _ = reference_classifier(dataset, quick=quick)
    k = classifier.num_classes
    real, fake = reference_test_features(dataset, quick=quick), features(classifier, samples)
    predicted = predict(classifier, samples, feats=fake)
    precision, recall = precision_recall(real[:len(fake)], fake, pr_k)
    out = {**fld_of_samples(samples, dataset, quick=quick, feats=fake),
           "precision": precision, "recall": recall, "class_entropy": class_entropy(predicted, k),
           "class_entropy_frac": class_entropy(predicted, k) / math.log(k),
           "class_histogram": torch.bincount(predicted, minlength=k).tolist()}
    if requested is not None:
        out["class_agreement"] = float((predicted == requested.cpu()).double().mean())
    if inception:
        from genlab.data.mnist import load_dataset
        from genlab.eval.fid import inception_fid

        out["fid_inception"] = inception_fid(load_dataset(dataset, "test")[0][:len(samples)], samples)
    return out


def score_sampler(sample: Callable[[], torch.Tensor], dataset: str = "mnist", quick: bool = False,
                  requested: torch.Tensor | None = None, inception: bool = False) -> dict:
    """Time `sample()` (-> images in [0, 1]) and score what it returns: `sample_quality` + samples/s. The one
    sampling-and-scoring path of training evaluation, benchmarks and the comparison."""
    t0 = time.perf_counter()
    images = sample()
    seconds = time.perf_counter() - t0
    return sample_quality(images, dataset, quick, requested=requested, inception=inception) | {
        "samples_per_s": len(images) / seconds, "sampling_s": seconds, "images": images}
