"""Publishing a dataset folder atomically, safe when several processes make the same set at once."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def publish(tmp: Path, out_dir: Path) -> Path:
    """Rename a finished temp folder into place. If another process (a parallel test, a second job on the node)
    published the same seeded set first, keep theirs: removing a folder someone may be reading is the race."""
    try:
        os.replace(tmp, out_dir)  # atomic; succeeds over a missing or empty folder
    except OSError:
        if not any(out_dir.glob("*.parquet")):  # a stale folder without data: ours replaces it
            shutil.rmtree(out_dir)
            os.replace(tmp, out_dir)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
