"""The final system's prompt splits on the caption world, fixed before any generator trains (issue 38).

Four held-out prompt sets, each a list of `PromptSpec` (the text and the attributes it names):
- `val_phrasings` / `val_combos`: every choice of a generator (temperature, guidance, epochs, architecture,
  conditioning) is made on these;
- `test_phrasings` / `test_combos`: scored once per reported model.
The `*_phrasings` sets use seen (class, colour) combinations and phrasings no generator or CLIP trained on: the
validation phrasings are the caption set's old held-out templates (decisions of chapter 5.7 have looked at them)
and two new ones; the test phrasings are new frames never used by any decision, not a training template with
words added. The `*_combos` sets use the training templates on the held-out (class, colour) combinations
(`HELDOUT_COMBOS`), split in two halves so that validation and test never share one. The halves are uneven by
class: classes 12-19 have one held-out combo each, so pullover, coat, shirt and bag are held out only in
validation, dress, sandal, sneaker and ankle boot only in test.

Generators train on the caption set's "train" split (training templates, seen combinations). The committed
`prompt_splits_v1.json` beside this module is the written-down copy; a test checks that this code still writes it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from genlab.data.captions import (CLASSES, COLOUR_NAMES, COLOURS, HELDOUT_COMBOS, HELDOUT_TEMPLATES_1,
                                  HELDOUT_TEMPLATES_2, POSITIONS, SIZE, SMALL, TEMPLATES_1, TEMPLATES_2, _article,
                                  _coloured, _resized, _resized_all, _sources, _stamp, class_phrase)

SPLITS_VERSION = 1
SPLITS_FILE = Path(__file__).with_name(f"prompt_splits_v{SPLITS_VERSION}.json")
PROMPT_SPLITS = ("val_phrasings", "val_combos", "test_phrasings", "test_combos")
PROMPTS_PER_SPLIT = {"val_phrasings": 1000, "val_combos": 1000, "test_phrasings": 2000, "test_combos": 2000}
TWO_OBJECT_FRAC = 0.4  # more two-object prompts than the data's 0.25: binding is the hard part and needs counts
SPLIT_SEED = 38  # fixed with the splits, before training; never changed after a result is seen


# New one-object phrasings. Validation: "a seven coloured red, small, in the top left".
def _v_coloured(o, r):
    return f"{_article(o['cls'])} {o['cls']} coloured {o['colour']}, {o['size']}, in the {o['pos']}", \
        ("class", "colour", "size", "pos")


def _v_size_colour(o, r):
    return f"{o['size']} and {o['colour']}: {_article(o['cls'])} {o['cls']}", ("class", "colour", "size")


# Test: a list of attributes, and a frame that names the place first.
def _x_list(o, r):
    return f"{o['cls']}; colour {o['colour']}; size {o['size']}", ("class", "colour", "size")


def _x_place_first(o, r):
    return f"at the {o['pos']} of the picture, one {o['colour']} {o['cls']}", ("class", "colour", "pos")


# Two objects: `a` is the left one, `b` the right one.
def _v2_beside(a, b, r):
    return f"{_coloured(a)} beside {_coloured(b)}", ("class", "colour")


def _x2_labels(a, b, r):
    return f"left: {_coloured(a)}, right: {_coloured(b)}", ("class", "colour", "side")


def _x2_its_left(a, b, r):
    return f"{_coloured(b)} with {_coloured(a)} at its left", ("class", "colour", "side")


def _x2_and(a, b, r):
    return f"both {_coloured(a)} and {_coloured(b)}", ("class", "colour")


VAL_TEMPLATES_1 = [*HELDOUT_TEMPLATES_1, _v_coloured, _v_size_colour]
VAL_TEMPLATES_2 = [*HELDOUT_TEMPLATES_2, _v2_beside]
TEST_TEMPLATES_1 = [_x_list, _x_place_first]
TEST_TEMPLATES_2 = [_x2_labels, _x2_its_left, _x2_and]


def _combo_halves() -> tuple[frozenset, frozenset]:
    """HELDOUT_COMBOS split in two: every other combo of each class goes to validation, the rest to test, and a
    class with one held-out combo alternates (classes 12-19), so both halves cover many classes and colours."""
    val, test = set(), set()
    for c in range(len(CLASSES)):
        mine = sorted(k for cc, k in HELDOUT_COMBOS if cc == c)
        for j, k in enumerate(mine):
            (val if (j + c) % 2 == 0 else test).add((c, k))
    return frozenset(val), frozenset(test)


VAL_COMBOS, TEST_COMBOS = _combo_halves()


@dataclass(frozen=True)
class ObjectSpec:
    """One object a prompt asks for; None where the prompt does not name the attribute."""
    cls: int
    colour: str
    size: str | None = None  # "large" | "small"
    pos: str | None = None  # one of POSITIONS (one object) | "left" | "right" (two objects, when the sides are named)


@dataclass(frozen=True)
class PromptSpec:
    text: str
    objects: tuple[ObjectSpec, ...]
    """One object, or two: the left one first (whether or not the prompt names the sides)."""
    template: str
    named: tuple[str, ...] = field(default=())


def _draw_object(rng: np.random.Generator, combos: list[tuple[int, int]], two: bool, side: str | None) -> dict:
    c, k = combos[rng.integers(len(combos))]
    o = {"class": int(c), "colour": COLOUR_NAMES[k], "cls": class_phrase(c, rng)}
    if two:
        return o | {"size": "small", "pos": side, "side": side}
    if rng.random() < 0.5:
        return o | {"size": "large", "pos": "center"}
    return o | {"size": "small", "pos": list(POSITIONS)[rng.integers(len(POSITIONS))]}


def _spec(o: dict, named: tuple[str, ...]) -> ObjectSpec:
    return ObjectSpec(o["class"], o["colour"], o["size"] if "size" in named else None,
                      o["pos"] if ("pos" in named or "side" in named) else None)


def make_prompts(split: str, n: int | None = None, seed: int = SPLIT_SEED) -> list[PromptSpec]:
    """The `split` prompt set: `n` prompts (PROMPTS_PER_SPLIT by default) drawn with the split's own seed."""
    if split not in PROMPT_SPLITS:
        raise ValueError(f"unknown prompt split {split!r}; choose one of {PROMPT_SPLITS}")
    n = PROMPTS_PER_SPLIT[split] if n is None else n
    rng = np.random.default_rng([seed, PROMPT_SPLITS.index(split)])
    seen = [(c, k) for c in range(len(CLASSES)) for k in range(len(COLOUR_NAMES)) if (c, k) not in HELDOUT_COMBOS]
    combos = {"val_combos": sorted(VAL_COMBOS), "test_combos": sorted(TEST_COMBOS)}.get(split, seen)
    t1, t2 = {"val_phrasings": (VAL_TEMPLATES_1, VAL_TEMPLATES_2),
              "test_phrasings": (TEST_TEMPLATES_1, TEST_TEMPLATES_2)}.get(split, (TEMPLATES_1, TEMPLATES_2))
    out = []
    for _ in range(n):
        two = rng.random() < TWO_OBJECT_FRAC
        objects = [_draw_object(rng, combos, two, side) for side in (("left", "right") if two else (None,))]
        template = (t2 if two else t1)[rng.integers(len(t2 if two else t1))]
        text, named = template(*objects, rng)
        out.append(PromptSpec(text, tuple(_spec(o, named) for o in objects), template.__name__, tuple(named)))
    return out


def splits_document() -> dict:
    """Every prompt of every split, as the committed JSON holds them."""
    return {"version": SPLITS_VERSION, "seed": SPLIT_SEED, "two_object_frac": TWO_OBJECT_FRAC,
            "val_combos": sorted(map(list, VAL_COMBOS)), "test_combos": sorted(map(list, TEST_COMBOS)),
            "templates": {"val": [t.__name__ for t in VAL_TEMPLATES_1 + VAL_TEMPLATES_2],
                          "test": [t.__name__ for t in TEST_TEMPLATES_1 + TEST_TEMPLATES_2]},
            "splits": {s: [_row(p) for p in make_prompts(s)] for s in PROMPT_SPLITS}}


def _row(p: PromptSpec) -> dict:
    row = asdict(p)
    row["objects"] = [{k: v for k, v in o.items() if v is not None} for o in row["objects"]]
    return row


def load_prompts(split: str) -> list[PromptSpec]:
    """The committed prompts of `split` (what every score of the final system is computed on)."""
    if split not in PROMPT_SPLITS:
        raise ValueError(f"unknown prompt split {split!r}; choose one of {PROMPT_SPLITS}")
    rows = json.loads(SPLITS_FILE.read_text())["splits"][split]
    return [PromptSpec(r["text"], tuple(ObjectSpec(**o) for o in r["objects"]), r["template"], tuple(r["named"]))
            for r in rows]


def write_splits_file(path: Path = SPLITS_FILE) -> Path:
    """The document as JSON, one prompt per line (readable diffs)."""
    doc = splits_document()
    splits = doc.pop("splits")
    lines = [json.dumps(doc)[:-1] + ', "splits": {']
    for i, (name, rows) in enumerate(splits.items()):
        body = ",\n".join(json.dumps(r, separators=(",", ":")) for r in rows)
        lines.append(f'"{name}": [\n{body}\n]' + ("," if i < len(splits) - 1 else ""))
    path.write_text("\n".join(lines) + "\n}}\n")
    return path


def render_prompts(prompts: list[PromptSpec], seed: int = 0, objects_from: str = "test",
                   root=None) -> tuple[torch.Tensor, list[list[dict]]]:
    """Real canvases of `prompts`: (uint8 (N, 3, 32, 32), the objects drawn on each). Each object is a real digit or
    item of the datasets' `objects_from` split ('test': never seen by any model), drawn as `make_rows` draws the
    caption set (same sizes, places and jitter); an attribute a prompt leaves unnamed is drawn as the data does.
    What the judge scores on these is the ceiling a generator is measured against."""
    rng = np.random.default_rng([seed, 38])
    images, classes = _sources("train" if objects_from == "train" else "test", root)
    small = _resized_all(images, SMALL)
    by_class = [torch.nonzero(classes == c).flatten().numpy() for c in range(len(CLASSES))]
    canvases, drawn = [], []
    for p in prompts:
        canvas = np.zeros((SIZE, SIZE, 3), np.uint8)
        placed = []
        for j, o in enumerate(p.objects):
            index = int(rng.choice(by_class[o.cls]))
            if len(p.objects) == 2:
                side = o.pos or ("left" if j == 0 else "right")
                xy, grey, size, pos = ((int(rng.integers(0, 3)) + (14 if side == "right" else 0),
                                        int(rng.integers(6, 11))), small[index], "small", side)
            else:
                size = o.size or ("small" if o.pos not in (None, "center") else
                                  ("large" if rng.random() < 0.5 else "small"))
                if size == "large":
                    px = int(rng.integers(24, 33))
                    xy = (int(rng.integers(0, 32 - px + 1)), int(rng.integers(0, 32 - px + 1)))
                    grey, pos = _resized(images[index], px), "center"
                else:
                    pos = o.pos or list(POSITIONS)[rng.integers(len(POSITIONS))]
                    x, y = POSITIONS[pos]
                    xy, grey = (x + int(rng.integers(-1, 2)), y + int(rng.integers(-1, 2))), small[index]
            _stamp(canvas, grey, COLOURS[o.colour], *xy)
            placed.append({"class": o.cls, "colour": o.colour, "size": size, "pos": pos, "xy": xy,
                           "px": grey.shape[0]})
        canvases.append(canvas.transpose(2, 0, 1).copy())
        drawn.append(placed)
    return torch.from_numpy(np.stack(canvases)), drawn


if __name__ == "__main__":  # python -m genlab.data.caption_prompts: (re)write the committed copy
    write_splits_file()
    print(f"wrote {SPLITS_FILE}")
