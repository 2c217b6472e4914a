"""FID on Inception-v3 features: the number papers report for CIFAR-10 and CelebA, when the weights are at hand.

torchmetrics' FrechetInceptionDistance with torch-fidelity's Inception (the TensorFlow FID network's weights,
downloaded once from torch-fidelity's release into torch's hub cache). Offline (this project's CI) the weights
cannot be had: `eval/fld` (genlab.eval.fld, a classifier trained on the set itself) is the stand-in there, and
asking for FID fails at the start of a job with the command that fetches the weights.

    python -m genlab.eval.fid --download          # once, on a machine with internet
"""

from __future__ import annotations

import argparse
import importlib.util
import urllib.error
from pathlib import Path

import torch

from genlab.eval.reconstruction import to_float

WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{WEIGHTS_FILE}"


class InceptionWeightsUnavailable(RuntimeError):
    """FID was asked for and Inception's weights are neither cached nor downloadable."""


def weights_path() -> Path:
    """Where torch's hub cache keeps the weights (what torch-fidelity's own download writes)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


def inception_weights(download: bool = True) -> Path:
    """The cached weights file, downloaded first when missing (and `download`); a clear error when impossible."""
    path = weights_path()
    if path.exists():
        return path
    if importlib.util.find_spec("torch_fidelity") is None:  # torchmetrics' Inception is torch-fidelity's network
        raise InceptionWeightsUnavailable("FID needs torch-fidelity: pip install torch-fidelity")
    error = "download=False"
    if download:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(WEIGHTS_URL, str(path), progress=True)
            return path
        except (urllib.error.URLError, OSError) as e:
            error = str(e)
    raise InceptionWeightsUnavailable(
        f"FID needs Inception-v3's weights ({WEIGHTS_FILE}, 91 MB) and they could not be fetched ({error}). "
        f"On a machine with internet run `python -m genlab.eval.fid --download` once, or copy the file from "
        f"{WEIGHTS_URL} to {path}; offline, eval/fld (the set's own classifier) is the stand-in: leave "
        f"--train.inception-fid off")


def _rgb(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W) / (N, C, H, W) or float in [0, 1] -> float (N, 3, H, W) in [0, 1]; grey repeated."""
    x = to_float(images)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


@torch.no_grad()
def inception_fid(real: torch.Tensor, fake: torch.Tensor, weights: str | Path | None = None,
                  batch_size: int = 100, device="cpu") -> float:
    """FID between two image sets (uint8 or float in [0, 1], grey or RGB, any size: the network resizes to
    299 as the TensorFlow reference does), 2048-d pool features, float64 statistics."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    weights = Path(weights) if weights else inception_weights()
    metric = FrechetInceptionDistance(feature=2048, normalize=True, sync_on_compute=False,
                                      feature_extractor_weights_path=str(weights)).to(device)
    for images, is_real in ((real, True), (fake, False)):
        for s in range(0, len(images), batch_size):
            metric.update(_rgb(images[s:s + batch_size]).to(device), real=is_real)
    return float(metric.compute())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--download", action="store_true", help="fetch the weights into torch's hub cache")
    args = parser.parse_args()
    if not args.download:
        parser.print_help()
        return
    try:
        print(inception_weights())
    except InceptionWeightsUnavailable as e:
        raise SystemExit(str(e)) from None


if __name__ == "__main__":
    main()
