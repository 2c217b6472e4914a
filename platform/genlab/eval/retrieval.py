"""CLIP evaluation: zero-shot classification, retrieval recall@k both ways, attribute-exact retrieval, linear probe.

Zero-shot classifiers are built the open_clip way (`open_clip.build_zero_shot_classifier`: the mean of the
normalised embeddings of every prompt template, per class). Recall@k follows open_clip's training report: the
i-th image and the i-th caption are a pair, and R@k is the fraction whose partner ranks in the top k.
"""

from __future__ import annotations

import numpy as np
import open_clip
import torch

from genlab.data.captions import DIGITS, FASHION
from genlab.multimodal.models import encode_images

# Fixed before any test image was looked at: the names the captions use and neutral templates in their words.
ZERO_SHOT_CLASSNAMES = {"mnist": DIGITS, "fashion_mnist": FASHION}
ZERO_SHOT_TEMPLATES = ("a {}.", "a white {}.", "a large white {}.", "a white {} in the center.",
                       "a picture of a white {}.")


def zero_shot_classifier(model, tokenizer, dataset: str, device="cpu") -> torch.Tensor:
    """(D, classes) weights of `dataset`'s zero-shot classifier."""
    model.eval()
    templates = [lambda c, t=t: t.format(c) for t in ZERO_SHOT_TEMPLATES]
    return open_clip.build_zero_shot_classifier(model, tokenizer, ZERO_SHOT_CLASSNAMES[dataset], templates,
                                                device=device).cpu()


def zero_shot_accuracy(model, tokenizer, dataset: str, images: torch.Tensor, labels: torch.Tensor,
                       device="cpu") -> dict[str, float]:
    """Top-1/top-3 zero-shot accuracy on uint8 images of `dataset` ('mnist' | 'fashion_mnist')."""
    weights = zero_shot_classifier(model, tokenizer, dataset, device)
    logits = encode_images(model, images, device=device) @ weights
    top = logits.topk(3, dim=1).indices
    return {"top1": float((top[:, 0] == labels).float().mean()),
            "top3": float((top == labels[:, None]).any(1).float().mean())}


def recall_at_k(image_features: torch.Tensor, text_features: torch.Tensor,
                ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """R@k both ways for paired rows (image i <-> caption i), as open_clip reports it; also the median rank."""
    logits = image_features @ text_features.t()
    truth = torch.arange(len(logits)).view(-1, 1)
    out = {}
    for name, lg in (("image_to_text", logits), ("text_to_image", logits.t())):
        ranks = torch.nonzero(torch.argsort(lg, dim=1, descending=True) == truth)[:, 1]
        out[f"{name}_median_rank"] = float(ranks.float().median() + 1)
        out |= {f"{name}_R@{k}": float((ranks < k).float().mean()) for k in ks}
    return out


def _matches(caption_attrs: dict, image_attrs: dict) -> bool:
    """Does an image have every attribute the caption names? Objects must agree in number; a caption that names
    sides matches left to right, otherwise in either order."""
    named = [a for a in caption_attrs["named"] if a != "side"]
    want, have = caption_attrs["objects"], image_attrs["objects"]
    if len(want) != len(have):
        return False
    same = lambda a, b: all(a[k] == b[k] for k in named)  # noqa: E731
    if len(want) == 1 or "side" in caption_attrs["named"]:
        return all(same(w, h) for w, h in zip(want, have))
    return (same(want[0], have[0]) and same(want[1], have[1])) or (same(want[0], have[1]) and same(want[1], have[0]))


def attribute_exact(image_features: torch.Tensor, text_features: torch.Tensor, attrs: list[dict]) -> dict:
    """Text->image top-1 over the whole gallery counts as right when the retrieved image has every attribute its
    caption names (many captions fit several images equally, so exact-pair recall undercounts). Split by the
    number of objects."""
    top1 = (text_features @ image_features.t()).argmax(1).tolist()
    hits = np.array([_matches(attrs[i], attrs[j]) for i, j in enumerate(top1)])
    two = np.array([len(a["objects"]) == 2 for a in attrs])
    out = {"attribute_exact_top1": float(hits.mean())}
    if (~two).any():
        out["attribute_exact_top1_one_object"] = float(hits[~two].mean())
    if two.any():
        out["attribute_exact_top1_two_objects"] = float(hits[two].mean())
    return out


def linear_probe(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
                 test_labels: torch.Tensor, seed: int = 0) -> float:
    """Test accuracy of a logistic regression on frozen image embeddings (the usual CLIP baseline)."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=1000, C=10.0, random_state=seed)
    clf.fit(train_features.numpy(), train_labels.numpy())
    return float(clf.score(test_features.numpy(), test_labels.numpy()))
