"""Omniglot (Lake et al. 2015) as a FewShotSet: class = alphabet/character, group = alphabet, 28x28, ink bright.

Sources, first found wins: the zip (or extracted folder) under `<root>/omniglot-py/` (torchvision's layout),
the directory in GENLAB_OMNIGLOT_DIR, the copy of the two small background sets that ships with this package
(`genlab/data/offline/omniglot/`, MIT licence beside them), and last the download from the official repository
(what torchvision.datasets.Omniglot fetches; small1/small2 sit beside it).
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from genlab.data.fewshot import FewShotSet, cached, from_arrays
from genlab.data.mnist import default_root

SETS = ("images_background", "images_evaluation", "images_background_small1", "images_background_small2")
URL = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python"
BUNDLED = Path(__file__).resolve().parent / "offline" / "omniglot"  # small1 + small2 only


def _candidates(name: str, root: Path) -> list[Path]:
    dirs = [root / "omniglot-py"]
    if os.environ.get("GENLAB_OMNIGLOT_DIR"):
        dirs.insert(0, Path(os.environ["GENLAB_OMNIGLOT_DIR"]))
    dirs.append(BUNDLED)
    return [p for d in dirs for p in (d / name, d / f"{name}.zip")]


def _read(source: Path, size: int) -> tuple[list[np.ndarray], list[str], list[str]]:
    """Read every PNG of `<set>/<Alphabet>/<character>/*.png` from a zip or a folder."""
    files: dict[tuple[str, str], list[bytes]] = {}
    if source.suffix == ".zip":
        with zipfile.ZipFile(source) as zf:
            for name in sorted(zf.namelist()):
                parts = name.split("/")
                if name.endswith(".png") and len(parts) >= 4:
                    files.setdefault((parts[-3], parts[-2]), []).append(zf.read(name))
    else:
        for png in sorted(source.glob("*/*/*.png")):
            files.setdefault((png.parent.parent.name, png.parent.name), []).append(png.read_bytes())
    per_class, names, groups = [], [], []
    for (alphabet, character), blobs in sorted(files.items()):
        imgs = [255 - np.asarray(Image.open(io.BytesIO(b)).convert("L").resize((size, size), Image.BOX))
                for b in blobs]  # black ink on white -> bright ink on black, like the glyphs and MNIST
        per_class.append(np.stack(imgs))
        names.append(f"{alphabet}/{character}")
        groups.append(alphabet)
    if not per_class:
        raise ValueError(f"{source} holds no <Alphabet>/<character>/*.png images")
    return per_class, names, groups


def load_omniglot(name: str = "images_background_small1", root: str | Path | None = None, size: int = 28,
                  download: bool = True) -> FewShotSet:
    """One Omniglot set as a FewShotSet, cached as parquet shards after the first read."""
    if name not in SETS:
        raise ValueError(f"unknown Omniglot set {name!r}; choose from {SETS}")
    root = Path(root) if root else default_root()

    def build() -> FewShotSet:
        found = next((p for p in _candidates(name, root) if p.exists()), None)
        if found is None:
            if not download:
                raise FileNotFoundError(f"Omniglot {name} not found in {[str(p) for p in _candidates(name, root)]}")
            from torchvision.datasets.utils import download_and_extract_archive

            try:
                download_and_extract_archive(f"{URL}/{name}.zip", str(root / "omniglot-py"))
            except Exception as e:  # noqa: BLE001 - offline machines end here
                raise RuntimeError(f"cannot download Omniglot {name} ({e}); put {name}.zip in {root / 'omniglot-py'} "
                                   "or set GENLAB_OMNIGLOT_DIR to a folder holding it") from e
            found = root / "omniglot-py" / name
        return from_arrays(*_read(found, size))

    return cached(f"omniglot-{name}-{size}px", build, root)
