"""A large offline many-class set: letters of the world's scripts rendered from Debian's `fonts-noto-core`.

Each letter is a class; its instances are the glyph under random affine and elastic distortion with stroke-width
jitter, at 28x28 like our Omniglot. Scripts are the groups, so a test script is never seen in meta-training.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from genlab.data.fewshot import FewShotSet, cached, from_arrays

log = logging.getLogger(__name__)
NOTO_DIR = Path("/usr/share/fonts/truetype/noto")
INSTALL_HINT = "install the fonts with `sudo apt-get install fonts-noto-core` (scripts/setup.sh does it)"
CANVAS = 64  # render and distort here, then downsample to `size`
FILLED_PEN = (1, 2)  # "filled" style: 1-2 3x3 dilations on top of the font's own weight
STROKE_PEN = (1, 1)  # "strokes" style: one 3x3 dilation of the 1-pixel centre line (ink as in Omniglot)


@dataclass(frozen=True)
class GlyphConfig:
    size: int = 28
    instances: int = 20
    """Distorted instances per letter (Omniglot has 20 drawers per character)."""
    max_per_script: int = 60
    """At most this many letters per script (evenly spaced through its letters), so big scripts do not dominate."""
    min_per_script: int = 10
    max_scripts: int = 0
    """Only the first N scripts in name order (0 = all)."""
    seed: int = 0
    style: str = "filled"
    """'filled': the font's outlines, dilated (about 3x the ink of Omniglot's pen); 'strokes': the outlines thinned
    to their centre lines and redrawn with a 3 px pen (at the 64 px canvas), closer to handwriting."""

    def __post_init__(self):
        if self.style not in ("filled", "strokes"):
            raise ValueError(f"glyph style must be 'filled' or 'strokes', got {self.style!r}")

    def cache_name(self) -> str:
        scripts = f"-{self.max_scripts}scripts" if self.max_scripts else ""
        style = "" if self.style == "filled" else f"-{self.style}"
        return f"noto-glyphs-{self.size}px-{self.instances}x-max{self.max_per_script}{scripts}-seed{self.seed}{style}"


def script_fonts(font_dir: Path = NOTO_DIR) -> dict[str, Path]:
    """{script: font file} for the `NotoSans<Script>-Regular.ttf` fonts (Latin/Greek/Cyrillic's NotoSans,
    serif, mono, UI and variant families left out: one font per script)."""
    if not font_dir.is_dir():
        raise FileNotFoundError(f"no Noto fonts in {font_dir}; {INSTALL_HINT}")
    fonts = {}
    for path in sorted(font_dir.glob("NotoSans*-Regular.ttf")):
        m = re.fullmatch(r"NotoSans(\w+)-Regular\.ttf", path.name)
        if m and not re.search(r"Mono|Display|UI|Unjoined|Symbols|Math|Music", m.group(1)):
            fonts[m.group(1)] = path
    return fonts


def letters(font_path: Path) -> list[str]:
    """Letters (Unicode category L*) the font maps, outside Latin, Greek and Cyrillic."""
    from fontTools.ttLib import TTFont

    cmap = TTFont(str(font_path), lazy=True).getBestCmap() or {}
    return [chr(cp) for cp in sorted(cmap) if cp >= 0x0530 and unicodedata.category(chr(cp)).startswith("L")]


def render(char: str, font: ImageFont.FreeTypeFont) -> np.ndarray | None:
    """The glyph centred on a CANVAS x CANVAS canvas (ink 255 on 0), or None when nothing is drawn."""
    img = Image.new("L", (CANVAS * 2, CANVAS * 2), 0)
    ImageDraw.Draw(img).text((CANVAS, CANVAS), char, fill=255, font=font, anchor="mm")
    box = img.getbbox()
    if box is None or (box[2] - box[0]) < 4 or (box[3] - box[1]) < 4:
        return None
    glyph = img.crop(box)
    scale = (CANVAS * 0.7) / max(glyph.size)
    glyph = glyph.resize((max(1, round(glyph.width * scale)), max(1, round(glyph.height * scale))), Image.LANCZOS)
    out = Image.new("L", (CANVAS, CANVAS), 0)
    out.paste(glyph, ((CANVAS - glyph.width) // 2, (CANVAS - glyph.height) // 2))
    return np.asarray(out)


def thin(ink: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning (1984): a boolean image's strokes reduced to 1-pixel centre lines, topology kept."""
    b = ink.astype(np.uint8)
    while True:
        changed = False
        for first_pass in (True, False):
            p = np.pad(b, 1)
            # neighbours P2..P9, clockwise from north
            n = [p[:-2, 1:-1], p[:-2, 2:], p[1:-1, 2:], p[2:, 2:], p[2:, 1:-1], p[2:, :-2], p[1:-1, :-2], p[:-2, :-2]]
            count = sum(n)
            transitions = sum((n[i] == 0) & (n[(i + 1) % 8] == 1) for i in range(8))
            p2, p4, p6, p8 = n[0], n[2], n[4], n[6]
            side = ((p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0)) if first_pass else \
                ((p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0))
            remove = (b == 1) & (count >= 2) & (count <= 6) & (transitions == 1) & side
            if remove.any():
                b[remove] = 0
                changed = True
        if not changed:
            return b.astype(bool)


def distort(glyph: np.ndarray, rng: np.random.Generator, size: int,
            pen: tuple[int, int] = FILLED_PEN) -> np.ndarray:
    """Stroke-width jitter (`pen`: the range of 3x3 dilations), a random affine map, an elastic distortion, then
    downsampling to size x size."""
    from scipy.ndimage import gaussian_filter, map_coordinates

    img = Image.fromarray(glyph)
    for _ in range(rng.integers(pen[0], pen[1] + 1)):
        img = img.filter(ImageFilter.MaxFilter(3))
    angle, scale = rng.uniform(-0.25, 0.25), rng.uniform(0.85, 1.15)
    shear, (tx, ty) = rng.uniform(-0.2, 0.2), rng.uniform(-3, 3, 2)
    c, s = np.cos(angle) / scale, np.sin(angle) / scale
    a, b, d, e = c, s + shear * c, -s, c - shear * s  # inverse map: output -> input coordinates
    cx = CANVAS / 2
    img = img.transform(img.size, Image.AFFINE, (a, b, cx - a * cx - b * cx + tx, d, e, cx - d * cx - e * cx + ty),
                        resample=Image.BILINEAR)
    arr = np.asarray(img, dtype=np.float32)
    dx, dy = (gaussian_filter(rng.uniform(-1, 1, arr.shape), 5) * 40 for _ in range(2))
    yy, xx = np.meshgrid(np.arange(CANVAS), np.arange(CANVAS), indexing="ij")
    arr = map_coordinates(arr, [yy + dy, xx + dx], order=1, mode="constant")
    small = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).resize((size, size), Image.BOX)
    return np.asarray(small)


def build_glyphs(cfg: GlyphConfig = GlyphConfig(), font_dir: Path = NOTO_DIR, progress: bool = True) -> FewShotSet:
    from tqdm import tqdm

    rng = np.random.default_rng(cfg.seed)
    per_class, names, groups = [], [], []
    fonts = script_fonts(font_dir)
    if cfg.max_scripts:
        fonts = dict(list(fonts.items())[: cfg.max_scripts])
    for script, path in tqdm(fonts.items(), desc="rendering Noto scripts", disable=not progress):
        font = ImageFont.truetype(str(path), size=CANVAS)
        rendered, seen = [], set()
        for ch in letters(path):
            glyph = render(ch, font)
            if glyph is not None and glyph.tobytes() not in seen:  # fonts reuse one shape for several letters
                seen.add(glyph.tobytes())
                rendered.append((ch, glyph))
        if len(rendered) < cfg.min_per_script:
            continue
        pick = np.linspace(0, len(rendered) - 1, min(cfg.max_per_script, len(rendered))).round().astype(int)
        for i in pick:
            ch, glyph = rendered[i]
            pen = FILLED_PEN
            if cfg.style == "strokes":  # centre lines drawn with a 3 px pen: the ink of Omniglot at 28 px
                glyph, pen = thin(glyph > 127).astype(np.uint8) * 255, STROKE_PEN
            per_class.append(np.stack([distort(glyph, rng, cfg.size, pen) for _ in range(cfg.instances)]))
            names.append(f"{script}/U+{ord(ch):04X}")
            groups.append(script)
    if not per_class:
        raise RuntimeError(f"no script in {font_dir} has {cfg.min_per_script}+ renderable letters; {INSTALL_HINT}")
    log.info("rendered %d letters of %d scripts", len(names), len(set(groups)))
    return from_arrays(per_class, names, groups)


def is_style_variant(font_script: str) -> bool:
    """Noto draws Tifinagh in 12 regional styles besides `NotoSansTifinagh`: the same letters again. Kept, they
    would be near-duplicate classes, and a test letter's twin could sit in meta-training."""
    return re.fullmatch(r"Tifinagh\w+", font_script) is not None


def load_glyphs(cfg: GlyphConfig = GlyphConfig(), root: str | Path | None = None) -> FewShotSet:
    """The glyph set, rendered once and cached as parquet shards under GENLAB_DATA_DIR; groups = scripts.
    Style variants are dropped here, after rendering: the distortions come from one random stream in script
    order, so this keeps every render identical to the one the benchmarks measured."""
    data = cached(cfg.cache_name(), lambda: build_glyphs(cfg), root)
    return data.subset_groups([g for g in data.groups if not is_style_variant(g)])
