"""The meta-train / meta-val / meta-test splits of each benchmark (classes of a test split are never trained on)."""

from __future__ import annotations

import torch

from genlab.data.fewshot import FewShotSet, split_groups
from genlab.meta.config import FewShotDataConfig

OMNIGLOT_CROSS_TEST = ("Japanese_(katakana)", "Sanskrit", "Tagalog")  # in small2, not in small1
# Noto scripts that write those alphabets (Sanskrit in Devanagari; Tagalog's Baybayin): kept out of meta-training
# for the cross-domain test. Katakana is not in fonts-noto-core.
CROSS_TEST_SCRIPTS = ("Devanagari", "Tagalog")


def concat(*sets: FewShotSet) -> FewShotSet:
    offsets = torch.cumsum(torch.tensor([0] + [s.num_classes for s in sets[:-1]]), 0)
    return FewShotSet(torch.cat([s.images for s in sets]), torch.cat([s.labels + o for s, o in zip(sets, offsets)]),
                      [n for s in sets for n in s.class_names], [g for s in sets for g in s.class_groups])


def split_by_class(data: FewShotSet, fractions=(0.7, 0.1, 0.2)) -> dict[str, FewShotSet]:
    groups = split_groups(data.class_names, fractions)
    return {k: data.subset_groups(v) for k, v in groups.items()}  # folder sets: group == class name


def load_splits(cfg: FewShotDataConfig) -> dict[str, FewShotSet]:
    from genlab.data.glyphs import GlyphConfig, load_glyphs

    if cfg.benchmark == "folder":
        from genlab.data.folder import load_folder

        return split_by_class(load_folder(cfg.folder, cfg.size))
    glyphs = load_glyphs(GlyphConfig(size=cfg.size, instances=cfg.glyph_instances, style=cfg.glyph_style,
                                     max_per_script=cfg.glyph_max_per_script, max_scripts=cfg.glyph_max_scripts))
    scripts = split_groups(glyphs.groups)
    splits = {k: glyphs.subset_groups(v) for k, v in scripts.items()}
    if cfg.benchmark == "glyphs":
        return splits
    if cfg.benchmark == "omniglot_cross":
        from genlab.data.omniglot import load_omniglot

        small1 = load_omniglot("images_background_small1", size=cfg.size)
        small2 = load_omniglot("images_background_small2", size=cfg.size)
        keep = [g for g in glyphs.groups if g not in CROSS_TEST_SCRIPTS and g not in scripts["val"]]
        return {"train": concat(glyphs.subset_groups(keep), small1), "val": splits["val"],
                "test": small2.subset_groups(OMNIGLOT_CROSS_TEST),
                "train_glyphs": glyphs.subset_groups(keep), "train_handwritten": small1}
    if cfg.benchmark == "omniglot_all":
        # the model to use on new alphabets of your own: every hand-drawn alphabet here in meta-training (small2's
        # three as well); the glyph test scripts, never trained on, are the only held-out test left
        from genlab.data.omniglot import load_omniglot

        small1 = load_omniglot("images_background_small1", size=cfg.size)
        hand = concat(small1, load_omniglot("images_background_small2", size=cfg.size)
                      .subset_groups(OMNIGLOT_CROSS_TEST))  # small2's other alphabets are small1's images again
        return {"train": concat(splits["train"], hand), "val": splits["val"], "test": splits["test"],
                "train_glyphs": splits["train"], "train_handwritten": hand}
    raise ValueError(f"unknown benchmark {cfg.benchmark!r}")
