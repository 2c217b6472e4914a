"""What the Serve tests share: a CLIP trained for seconds, an index of caption images, free loopback ports."""

from __future__ import annotations

import socket
from pathlib import Path

import open_clip
import torch
from safetensors.torch import save_file

from genlab.data.captions import read_caption_table
from genlab.data.shards import ensure_shards
from genlab.multimodal.index import EmbeddingIndex
from genlab.multimodal.models import create_clip, encode_images, prepare_images

MODEL = "genlab-clip-rn"


def train_tiny_clip(out: Path, steps: int = 150, batch: int = 64, seed: int = 0) -> Path:
    """A CLIP trained ~40 s on the small caption set: enough to tell colours apart (measured: colour of the top
    text-search hit right for 0.95-1.0 of queries after 120 steps), far from telling digits apart."""
    torch.manual_seed(seed)
    table = read_caption_table(ensure_shards("captions_small", "train"))
    model, _, tokenizer = create_clip(MODEL)
    tokens = tokenizer(table["captions"])
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.1)
    loss_fn = open_clip.ClipLoss()
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(tokens), (batch,), generator=gen)
        loss = loss_fn(*model(prepare_images(table["images"][idx], model), tokens[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, out / "model.safetensors")
    return out / "model.safetensors"


def build_caption_index(weights: Path, out: Path, split: str = "test_combos") -> tuple[EmbeddingIndex, dict]:
    """Index the small caption set's `split` as jobs/index.py would ('captions_small:<split>/<row>' ids);
    returns the index and each id's attributes."""
    model, _, _ = create_clip(MODEL, str(weights))
    table = read_caption_table(ensure_shards("captions_small", split))
    ids = [f"captions_small:{split}/{i:07d}" for i in range(len(table["captions"]))]
    index = EmbeddingIndex(model.text_projection.shape[1], MODEL, str(weights))
    index.add(ids, encode_images(model, table["images"]))
    index.save(out)
    return index, dict(zip(ids, table["attrs"]))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
