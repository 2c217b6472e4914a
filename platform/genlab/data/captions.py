"""Captioned colour canvases made from MNIST digits and Fashion-MNIST items: the image-text data of chapter 5.7.

Each 32x32 RGB canvas holds one object (large and centred, or small in a corner / the centre) or two small
objects side by side; each object is a digit or a clothing item drawn in one of eight colours. Every image gets
one caption from a template with synonyms ("a red seven in the top left", "the digit 7, small, written in red",
"a blue sneaker next to a green 2") and the attributes that caption names, so retrieval can be scored
attribute-exact. Held out for evaluation, never seen in training:
- a fifth of the (class, colour) combinations (`HELDOUT_COMBOS`, never white: white is how MNIST comes);
- the templates in `HELDOUT_TEMPLATES`.
Splits: "train" (seen combos, seen templates, objects from the datasets' train splits), "test_combos" (every
object a held-out combo, seen templates, test-split objects), "test_templates" (seen combos, held-out templates,
test-split objects). Written once to parquet (`id`, `image` raw bytes, `caption`, `tokens`, `attrs` JSON, `label`).
"""

from __future__ import annotations

import functools
import json
import re
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F

from genlab.data.atomic import publish
from genlab.data.mnist import load_dataset

SIZE = 32
CONTEXT_LENGTH = 32  # tokens a caption may take (start and end included); the text towers are sized to it
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
FASHION = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]
CLASSES = DIGITS + FASHION  # class id: digit d -> d, Fashion-MNIST label f -> 10 + f
SYNONYMS = {  # ways a caption may name a class (the first is the class name)
    **{name: [name, str(d), f"digit {d}", f"number {name}"] for d, name in enumerate(DIGITS)},
    "t-shirt": ["t-shirt", "top", "tee"], "trouser": ["trouser", "pair of trousers", "pair of pants"],
    "pullover": ["pullover", "sweater", "jumper"], "dress": ["dress", "frock"], "coat": ["coat", "jacket"],
    "sandal": ["sandal", "summer shoe"], "shirt": ["shirt", "button shirt"], "sneaker": ["sneaker", "trainer"],
    "bag": ["bag", "handbag"], "ankle boot": ["ankle boot", "boot"],
}
COLOURS = {"white": (255, 255, 255), "red": (255, 40, 40), "green": (40, 220, 40), "blue": (50, 90, 255),
           "yellow": (255, 230, 0), "cyan": (0, 230, 230), "magenta": (235, 40, 235), "orange": (255, 140, 0)}
COLOUR_NAMES = list(COLOURS)
POSITIONS = {"top left": (1, 1), "top right": (15, 1), "bottom left": (1, 15), "bottom right": (15, 15),
             "center": (8, 8)}  # (x, y) of a small (16 px) object's corner
SMALL = 16


def _heldout_combos() -> frozenset[tuple[int, int]]:
    """32 of the 160 (class, colour) pairs: two colours for classes 0-11, one for 12-19, never white."""
    out = set()
    for c in range(len(CLASSES)):
        for j in range(2 if c < 12 else 1):
            out.add((c, 1 + (3 * c + j) % 7))
    return frozenset(out)


HELDOUT_COMBOS = _heldout_combos()


def class_phrase(c: int, rng: np.random.Generator) -> str:
    return str(rng.choice(SYNONYMS[CLASSES[c]]))


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou8" else "a"


# Templates: (objects, size, position, phrase) -> (caption, names) where `names` lists the attributes the caption
# states. One-object templates get (cls, colour, size, position) phrases; two-object ones two (cls, colour).
def _coloured(o) -> str:
    """"a red seven", "an orange bag": the phrase most templates name an object by."""
    return f"{_article(o['colour'])} {o['colour']} {o['cls']}"


def _t_pos(o, r):
    return f"{_coloured(o)} in the {o['pos']}", ("class", "colour", "pos")


def _t_size(o, r):
    return f"{_article(o['size'])} {o['size']} {o['colour']} {o['cls']}", ("class", "colour", "size")


def _t_written(o, r):
    verb = "written" if o["class"] < 10 else "drawn"
    return f"the {o['cls']}, {o['size']}, {verb} in {o['colour']}", ("class", "colour", "size")


def _t_picture(o, r):
    return f"a picture of {_coloured(o)}", ("class", "colour")


def _t_bare(o, r):
    return f"{o['colour']} {o['cls']}", ("class", "colour")


def _t_showing(o, r):
    return (f"an image showing {_article(o['size'])} {o['size']} {o['cls']} in {o['colour']} at the {o['pos']}",
            ("class", "colour", "size", "pos"))


def _h_there_is(o, r):
    return f"there is {_coloured(o)} in the {o['pos']}", ("class", "colour", "pos")


def _h_parens(o, r):
    return f"{o['cls']} ({o['colour']}, {o['size']})", ("class", "colour", "size")


# Two objects: `a` is the left one, `b` the right one.
_WITH_SIDES = ("class", "colour", "side")


def _t2_next(a, b, r):
    return f"{_coloured(a)} next to {_coloured(b)}", ("class", "colour")


def _t2_sides(a, b, r):
    return f"{_coloured(a)} on the left and {_coloured(b)} on the right", _WITH_SIDES


def _t2_left_of(a, b, r):
    return f"{_coloured(a)} to the left of {_coloured(b)}", _WITH_SIDES


def _t2_sides_reversed(a, b, r):
    return f"{_coloured(b)} on the right and {_coloured(a)} on the left", _WITH_SIDES


def _t2_on_left_of(a, b, r):
    return f"{_coloured(a)} on the left of {_coloured(b)}", _WITH_SIDES


def _t2_on_right_of(a, b, r):
    return f"{_coloured(b)} on the right of {_coloured(a)}", _WITH_SIDES


def _h2_right_of(a, b, r):
    return f"{_coloured(b)} to the right of {_coloured(a)}", _WITH_SIDES


TEMPLATES_1 = [_t_pos, _t_size, _t_written, _t_picture, _t_bare, _t_showing]
# v1 had only the first two: every two-object caption named the left object first, and the model learned
# "first named = left", failing the held-out "B to the right of A" (benchmarks/NOTES.md). v2 named sides in
# both orders and said "to the left of"; the model then read the unseen "to the right of" as "to the left of":
# "right" never related two objects in training. v3 also says "A on the left of B" and "B on the right of A",
# so every word of the held-out template is seen in training, its frame "B to the right of A" never.
TEMPLATES_2 = [_t2_next, _t2_sides, _t2_left_of, _t2_sides_reversed, _t2_on_left_of, _t2_on_right_of]
HELDOUT_TEMPLATES_1 = [_h_there_is, _h_parens]
HELDOUT_TEMPLATES_2 = [_h2_right_of]
HELDOUT_TEMPLATES = [t.__name__ for t in HELDOUT_TEMPLATES_1 + HELDOUT_TEMPLATES_2]
SPLITS = ("train", "test_combos", "test_templates")
DATA_VERSION = 3  # bump when what make_rows draws changes: shards of another version are never reused


@dataclass(frozen=True)
class CaptionSet:
    """A named size of the caption set: rows per split and the seed that makes it."""
    train: int
    test: int
    seed: int = 0
    two_object_frac: float = 0.25


CAPTION_SETS = {"captions": CaptionSet(train=100_000, test=5_000), "captions_small": CaptionSet(train=4_000, test=500)}


def is_caption_set(name: str) -> bool:
    return name in CAPTION_SETS


def shard_name(name: str) -> str:
    """The directory name of a caption set's shards: its name and the generator's version."""
    return f"{name}-v{DATA_VERSION}"


def _sources(split: str, root) -> tuple[torch.Tensor, torch.Tensor]:
    """Objects of both datasets as (grey uint8 (N, 28, 28), class id (N,))."""
    src = "train" if split == "train" else "test"
    d_img, d_lab = load_dataset("mnist", src, root)
    f_img, f_lab = load_dataset("fashion_mnist", src, root)
    return torch.cat([d_img, f_img]), torch.cat([d_lab, f_lab + 10])


def _stamp(canvas: np.ndarray, grey: np.ndarray, colour, x: int, y: int) -> None:
    """Draw a grey object tinted by `colour` with its top-left corner at (x, y), brightest wins."""
    h, w = grey.shape
    tinted = (grey[..., None].astype(np.float32) * np.asarray(colour, np.float32) / 255.0).astype(np.uint8)
    region = canvas[y:y + h, x:x + w]
    np.maximum(region, tinted, out=region)


def _resized(grey: torch.Tensor, size: int) -> np.ndarray:
    out = F.interpolate(grey[None, None].float(), size=(size, size), mode="bilinear", antialias=True,
                        align_corners=False)
    return out[0, 0].round().clamp(0, 255).to(torch.uint8).numpy()


def _resized_all(images: torch.Tensor, size: int) -> np.ndarray:
    out = F.interpolate(images[:, None].float(), size=(size, size), mode="bilinear", antialias=True,
                        align_corners=False)
    return out[:, 0].round().clamp(0, 255).to(torch.uint8).numpy()


def make_rows(split: str, n: int, seed: int = 0, two_object_frac: float = 0.25, root=None) -> list[dict]:
    """`n` captioned canvases of `split`: dicts with image (uint8 (3, 32, 32)), caption, attrs, label."""
    if split not in SPLITS:
        raise ValueError(f"unknown caption split {split!r}; choose one of {SPLITS}")
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    images, classes = _sources(split, root)
    small = _resized_all(images, SMALL)  # most objects are small: resize them all at once
    by_class = [torch.nonzero(classes == c).flatten().numpy() for c in range(len(CLASSES))]
    heldout_only = split == "test_combos"
    t1, t2 = ((HELDOUT_TEMPLATES_1, HELDOUT_TEMPLATES_2) if split == "test_templates"
              else (TEMPLATES_1, TEMPLATES_2))
    allowed = [(c, k) for c in range(len(CLASSES)) for k in range(len(COLOURS))
               if ((c, k) in HELDOUT_COMBOS) == heldout_only]
    rows = []
    for _ in range(n):
        two = rng.random() < two_object_frac
        objects = []
        for side in (("left", "right") if two else (None,)):
            c, k = allowed[rng.integers(len(allowed))]
            index = int(rng.choice(by_class[c]))
            obj = {"class": int(c), "colour": COLOUR_NAMES[k], "cls": class_phrase(c, rng)}
            if two:
                obj |= {"size": "small", "side": side, "pos": side,
                        "xy": (int(rng.integers(0, 3)) + (14 if side == "right" else 0), int(rng.integers(6, 11)))}
            elif rng.random() < 0.5:
                size = int(rng.integers(24, 33))
                jitter = 32 - size
                obj |= {"size": "large", "pos": "center", "px": size,
                        "xy": (int(rng.integers(0, jitter + 1)), int(rng.integers(0, jitter + 1)))}
            else:
                pos = list(POSITIONS)[rng.integers(len(POSITIONS))]
                x, y = POSITIONS[pos]
                obj |= {"size": "small", "pos": pos, "xy": (x + int(rng.integers(-1, 2)), y + int(rng.integers(-1, 2)))}
            obj["index"] = index
            objects.append(obj)
        canvas = np.zeros((SIZE, SIZE, 3), np.uint8)
        for o in objects:
            grey = small[o["index"]] if "px" not in o else _resized(images[o["index"]], o["px"])
            _stamp(canvas, grey, COLOURS[o["colour"]], *o["xy"])
        if two:
            template = t2[rng.integers(len(t2))]
            caption, named = template(objects[0], objects[1], rng)
        else:
            template = t1[rng.integers(len(t1))]
            caption, named = template(objects[0], rng)
        attrs = {"objects": [{"class": o["class"], "colour": o["colour"], "size": o["size"], "pos": o["pos"]}
                             for o in objects], "named": list(named), "template": template.__name__}
        rows.append({"image": canvas.transpose(2, 0, 1).copy(), "caption": caption, "attrs": attrs,
                     "label": objects[0]["class"]})
    return rows


@functools.lru_cache(maxsize=1)
def _tokenizer():
    import open_clip

    return open_clip.get_tokenizer("ViT-B-32", context_length=CONTEXT_LENGTH)  # reads the BPE vocabulary: once


def tokenize(captions: list[str]) -> torch.Tensor:
    """open_clip's BPE tokens (its vocabulary ships in the package), `CONTEXT_LENGTH` per caption."""
    tokens = _tokenizer()(captions)
    too_long = [c for c, t in zip(captions, tokens) if int(t[-1]) != 0]
    if too_long:
        raise ValueError(f"captions longer than {CONTEXT_LENGTH} tokens: {too_long[:3]}")
    return tokens


def write_caption_shards(rows: list[dict], out_dir: Path, rows_per_shard: int = 10_000) -> Path:
    """Atomically write rows as parquet shards: image bytes (3*32*32), caption, tokens (int32 bytes), attrs."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    for i, start in enumerate(range(0, len(rows), rows_per_shard)):
        chunk = rows[start:start + rows_per_shard]
        tokens = tokenize([r["caption"] for r in chunk]).to(torch.int32).numpy()
        table = pa.table({
            "id": pa.array([f"{start + j:07d}" for j in range(len(chunk))], pa.string()),
            "image": pa.array([r["image"].tobytes() for r in chunk], pa.binary()),
            "tokens": pa.array([t.tobytes() for t in tokens], pa.binary()),
            "caption": pa.array([r["caption"] for r in chunk], pa.string()),
            "attrs": pa.array([json.dumps(r["attrs"]) for r in chunk], pa.string()),
            "label": pa.array([r["label"] for r in chunk], pa.int64()),
        })
        pq.write_table(table, tmp / f"part-{i:05d}.parquet")
    return publish(tmp, out_dir)


def ensure_caption_shards(name: str, split: str, out: Path, root=None) -> Path:
    """The shard directory of caption set `name`, split `split` ('test' means 'test_combos'), made on first use."""
    spec = CAPTION_SETS[name]
    split = "test_combos" if split == "test" else split
    if not any(out.glob("*.parquet")):
        n = spec.train if split == "train" else spec.test
        write_caption_shards(make_rows(split, n, spec.seed, spec.two_object_frac, root), out)
    return out


def read_caption_table(directory: str | Path) -> dict:
    """A whole caption split: images uint8 (N, 3, 32, 32), tokens int64 (N, L), captions, attrs (dicts), labels."""
    table = pq.read_table(str(directory))
    images = np.frombuffer(b"".join(table.column("image").to_pylist()), np.uint8).reshape(-1, 3, SIZE, SIZE)
    tokens = np.frombuffer(b"".join(table.column("tokens").to_pylist()), np.int32).reshape(len(images), -1)
    return {"images": torch.from_numpy(images.copy()), "tokens": torch.from_numpy(tokens.astype(np.int64)),
            "captions": table.column("caption").to_pylist(),
            "attrs": [json.loads(a) for a in table.column("attrs").to_pylist()],
            "labels": torch.from_numpy(table.column("label").to_numpy().astype(np.int64))}


# Hard negatives (NegCLIP, Yuksekgonul et al. 2023): for each caption, one that differs only in what a
# bag-of-words model cannot see. Two objects with sides: the same words with the objects swapped (the caption of
# the mirrored canvas); "next to": the two colours swapped; one object: its colour replaced.
_SWAPS = [(re.compile(r"^(.+?) on the left and (.+?) on the right$"), "{1} on the left and {0} on the right"),
          (re.compile(r"^(.+?) on the right and (.+?) on the left$"), "{1} on the right and {0} on the left"),
          (re.compile(r"^(.+?) to the left of (.+)$"), "{1} to the left of {0}"),
          (re.compile(r"^(.+?) to the right of (.+)$"), "{1} to the right of {0}"),
          (re.compile(r"^(.+?) on the left of (.+)$"), "{1} on the left of {0}"),
          (re.compile(r"^(.+?) on the right of (.+)$"), "{1} on the right of {0}")]
_COLOUR_WORD = re.compile(r"\b(?:(an?) )?(" + "|".join(COLOURS) + r")\b")


def hard_negative(caption: str) -> str:
    """A caption of the same words (or one colour changed) that does not describe the canvas `caption` does.
    Deterministic in the caption's characters (a replacement colour comes from their CRC, spaces ignored: the
    caption decoded from tokens gets the same), so a resumed run sees the same negatives."""
    caption = " ".join(caption.split())
    for pattern, swapped in _SWAPS:
        m = pattern.match(caption)
        if m:
            return swapped.format(*m.groups())
    found = list(_COLOUR_WORD.finditer(caption))
    if len(found) == 2 and found[0].group(2) != found[1].group(2):  # "next to": swap the two colours
        new = [found[1].group(2), found[0].group(2)]
    elif found:  # one colour (or two equal ones): replace the first by another colour
        shift = 1 + zlib.crc32(caption.replace(" ", "").encode()) % (len(COLOUR_NAMES) - 1)  # never 0 or 8
        new = [COLOUR_NAMES[(COLOUR_NAMES.index(found[0].group(2)) + shift) % len(COLOUR_NAMES)]]
    else:
        raise ValueError(f"no colour and no sides in caption {caption!r}: not one of genlab's caption templates")
    out, last = [], 0
    for m, colour in zip(found, new):
        article = "" if m.group(1) is None else _article(colour) + " "
        out += [caption[last:m.start()], article + colour]
        last = m.end()
    return "".join(out) + caption[last:]


def hard_negative_tokens(tokens: torch.Tensor) -> torch.Tensor:
    """(B, L) caption tokens -> (B, L) tokens of each caption's `hard_negative`."""
    from open_clip.tokenizer import decode

    texts = [decode(t).split("<start_of_text>")[-1].split("<end_of_text>")[0] for t in tokens.cpu()]
    return tokenize([hard_negative(t) for t in texts]).to(tokens.device)
