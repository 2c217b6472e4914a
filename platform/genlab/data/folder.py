"""Any image folder with one sub-folder per class (`root/<class>/*.png|jpg`) as a FewShotSet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from genlab.data.fewshot import FewShotSet, from_arrays

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}


def load_folder(root: str | Path, size: int = 28, invert: bool | None = None) -> FewShotSet:
    """Grayscale, resized to size x size. `invert=None` inverts when the mean pixel is bright (dark ink on white
    paper), so ink is bright as in the other sets. Group = class (a folder has no alphabets)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    per_class, names = [], []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(f for f in class_dir.iterdir() if f.suffix.lower() in EXTENSIONS)
        if files:
            per_class.append(np.stack([np.asarray(Image.open(f).convert("L").resize((size, size), Image.BOX))
                                       for f in files]))
            names.append(class_dir.name)
    if len(per_class) < 2:
        raise ValueError(f"{root} needs at least 2 class sub-folders with images ({EXTENSIONS}); found {len(names)}")
    if invert or (invert is None and np.mean([x.mean() for x in per_class]) > 127):
        per_class = [255 - x for x in per_class]
    return from_arrays(per_class, names, list(names))
