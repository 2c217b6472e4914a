"""What the search server does with bytes and paths, without Ray: uploads checked and decoded, folders checked
against the allowed root, indexed images found again for thumbnails.

Every refusal is a `RequestError` carrying the HTTP status it should become (the ingress turns it into a 4xx), so
bad input never reaches a model and never becomes a 500.
"""

from __future__ import annotations

import bisect
import functools
import io
import os
import warnings
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image, UnidentifiedImageError

from genlab.multimodal.embed import decode_images, list_images

MAX_UPLOAD_BYTES = 8 * 2**20
MAX_PIXELS = 40_000_000  # a PNG of a few KB can claim gigapixels; PIL refuses past this instead of allocating
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
# The formats the page and the indexer read; any other Pillow plugin (EPS runs Ghostscript, where installed) is
# never tried on untrusted bytes.
FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")


class RequestError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def decode_upload(data: bytes, size: int, max_bytes: int = MAX_UPLOAD_BYTES) -> np.ndarray:
    """Uploaded image bytes -> uint8 RGB (size, size, 3), resized as the image towers take files."""
    if len(data) > max_bytes:
        raise RequestError(413, f"upload of {len(data)} bytes is over the {max_bytes}-byte limit")
    if not data:
        raise RequestError(400, "the uploaded file is empty")
    return read_image(lambda: io.BytesIO(data), size, "the upload")


def read_image(open_file, size: int, what: str) -> np.ndarray:
    """The one decoder of untrusted image bytes (uploads, folder files): `open_file()` gives a binary file;
    only FORMATS are tried, the pixel limit is checked from the header, a JPEG is decoded at the smallest scale
    >= size (draft mode: a 40-MP photo costs a 1/8-size decode), the whole image is decoded now (a truncated file
    fails here, not later in a model) and resized to uint8 RGB (size, size, 3). Every refusal is a RequestError
    whose message starts with `what`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with open_file() as f, Image.open(f, formats=FORMATS) as im:
                if im.width * im.height > MAX_PIXELS:
                    raise RequestError(413, f"{what}: a {im.width}x{im.height} image is over {MAX_PIXELS} pixels")
                if im.format == "JPEG":
                    im.draft("RGB", (size, size))
                im.load()
                return np.asarray(im.convert("RGB").resize((size, size), Image.BICUBIC))
    except RequestError:
        raise
    except UnidentifiedImageError:
        raise RequestError(415, f"{what} is not an image of the formats read here (PNG, JPEG, WebP, BMP, "
                                "GIF)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise RequestError(413, f"{what}: image too large ({err})") from None
    except (OSError, SyntaxError, ValueError) as err:  # PIL's truncated / corrupt stream errors
        raise RequestError(400, f"{what} is corrupt, truncated or unreadable ({err})") from None


def open_under(root: Path, path: Path):
    """`path` opened for reading only if the file actually opened lies under `root`: the final component must not
    be a symlink (O_NOFOLLOW), and the opened descriptor's real path is checked again, so swapping a file for a
    symlink after the folder was listed leads nowhere."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    proc = Path(f"/proc/self/fd/{fd}")
    real = Path(os.readlink(proc)) if proc.exists() else path.resolve()
    if not real.is_relative_to(root.resolve()):
        os.close(fd)
        raise RequestError(403, f"{path.name} leads outside the allowed root")
    return os.fdopen(fd, "rb")


def load_folder_image(root: Path, path: Path, size: int) -> np.ndarray:
    """An image file of an indexed folder as uint8 RGB (size, size, 3), opened only under `root` (open_under) and
    decoded as uploads are (read_image)."""
    return read_image(lambda: open_under(root, path), size, "the file")


def resolve_folder(root: Path, folder: str) -> Path:
    """`folder`, relative to the allowed `root`, as a real directory inside it; refuses anything that leaves
    the root (`..`, absolute paths, symlinks pointing out)."""
    if not folder or "\x00" in folder or len(folder) > 1024:
        raise RequestError(400, "give a folder as a path relative to the allowed root, e.g. 'photos/2024'")
    if Path(folder).is_absolute() or folder.startswith("~"):
        raise RequestError(403, "absolute paths are not allowed: give the folder relative to the allowed root")
    root = root.resolve()
    try:
        real = (root / folder).resolve()
    except (OSError, RuntimeError) as err:  # name too long, symlink loop
        raise RequestError(400, f"unusable folder path ({err})") from None
    if not real.is_relative_to(root):
        raise RequestError(403, f"{folder!r} leads outside the allowed root")
    if not real.is_dir():
        raise RequestError(404, f"no folder {folder!r} under the allowed root")
    return real


def images_under(root: Path, folder: Path, limit: int, skipped: list | None = None) -> list[Path]:
    """Image files of `folder` (recursively) whose real path stays under `root` and that are not hidden (no part
    of the path below `folder` starts with a dot), sorted; more than `limit` is refused. The files left out are
    appended to `skipped` as {"path" (relative to folder), "reason"}."""
    root = root.resolve()
    found = []
    for p in list_images(folder):
        rel = p.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            reason = "hidden"
        elif not p.resolve().is_relative_to(root):
            reason = "a link leading outside the allowed root"
        else:
            found.append(p)
            continue
        if skipped is not None:
            skipped.append({"path": str(rel), "reason": reason})
    if len(found) > limit:
        raise RequestError(413, f"{folder.name!r} holds more than {limit} images: index it with "
                                "jobs/index.py --source <folder> --out <this index>")
    return found


def png_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def file_thumbnail(path: Path, side: int = 128) -> bytes:
    """A PNG thumbnail of an indexed file, read with the same limits as uploads (formats, pixels, draft decode)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path, formats=FORMATS) as im:
            if im.width * im.height > MAX_PIXELS:
                raise ValueError(f"{im.width}x{im.height} is over {MAX_PIXELS} pixels")
            im.draft("RGB", (side, side))  # a JPEG decodes at 1/2..1/8 scale; other formats ignore it
            im = im.convert("RGB")
            im.thumbnail((side, side))
            return png_bytes(np.asarray(im))


class CaptionImages:
    """Rows of a caption split by id (an id is the row's position in the split), read one shard at a time
    with the last few shards cached."""

    def __init__(self, directory: Path):
        self.files = sorted(Path(directory).glob("*.parquet"))
        self.starts = np.cumsum([0] + [pq.read_metadata(f).num_rows for f in self.files]).tolist()

    @functools.lru_cache(maxsize=4)
    def _column(self, i: int) -> list[bytes]:
        return pq.read_table(self.files[i], columns=["image"]).column("image").to_pylist()

    def rgb(self, row_id: str) -> np.ndarray:
        row = int(row_id)
        if not 0 <= row < self.starts[-1]:
            raise KeyError(row_id)
        i = bisect.bisect_right(self.starts, row) - 1
        return decode_images([self._column(i)[row - self.starts[i]]])[0].permute(1, 2, 0).numpy()


def _existing_caption_shards(tag: str) -> Path:
    """The shard directory of 'captions:<split>' as indexing wrote it; a GET never renders or writes shards."""
    from genlab.data import captions
    from genlab.data.shards import shard_dir

    name, split = tag.split(":", 1)
    directory = shard_dir(captions.shard_name(name) if captions.is_caption_set(name) else name, split)
    if not any(directory.glob("*.parquet")):
        raise FileNotFoundError(f"no shards of {tag} on this machine (index it again here)")
    return directory


def thumbnail(item_id: str, caption_sources: dict) -> bytes:
    """PNG of an indexed image: 'captions:<split>/<row>' from its shards, else the file at the absolute path the
    id is. Callers pass only ids that are in the index."""
    tag, _, row = item_id.rpartition("/")
    if tag.startswith("captions") and ":" in tag:
        if tag not in caption_sources:
            caption_sources[tag] = CaptionImages(_existing_caption_shards(tag))
        return png_bytes(caption_sources[tag].rgb(row))
    path = Path(item_id)
    if not path.is_file():
        raise FileNotFoundError(item_id)
    return file_thumbnail(path)
