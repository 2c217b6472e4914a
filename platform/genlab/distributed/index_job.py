"""Body of jobs/index.py: embed a collection (Ray Data or in-process), add it to an index on disk, query it."""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from genlab.multimodal.index import EmbeddingIndex
from genlab.multimodal.models import create_clip, encode_texts, resolve_weights, tower_image_size


@dataclass
class IndexArgs:
    source: str = ""
    """What to embed: an image folder, a parquet directory (id + raw image bytes) or a caption split as
    'captions:test_combos'. Empty: only query an existing --out index."""
    out: str = "runs/index"
    """Index directory; an existing one is extended (only new ids are added)."""
    model: str = "genlab-clip-rn"
    """open_clip model name (taken from the checkpoint when --pretrained is a genlab run or checkpoint)."""
    pretrained: str = ""
    """Weights: a CLIP run directory of jobs/clip.py, a checkpoint, a weights file, or an open_clip tag
    (e.g. --model ViT-B-32 --pretrained laion2b_s34b_b79k; needs the internet)."""
    ray: bool = True
    """Embed with Ray Data (actor pool; a cluster spreads it over nodes); False: one in-process loop."""
    actors: int = 1
    """Ray Data actors running the image tower."""
    cpus_per_actor: float = 1.0
    """Ray CPUs each actor holds (bookkeeping; its torch threads use the node's cores): the actors together must
    leave one CPU of the cluster to Ray Data's file listing."""
    actor_resources: dict[str, float] | None = None
    """Custom Ray resources each actor needs, e.g. `--actor-resources genlab_worker 1`; with one unit per node,
    the actors spread over the nodes."""
    batch_size: int = 512
    """Images per batch."""
    ann: str = ""
    """Also build an approximate faiss index: 'ivf' or 'hnsw' (and report its recall@10 against exact)."""
    query: tuple[str, ...] = ()
    """Text queries: print their top-k images."""
    query_image: tuple[str, ...] = ()
    """Image files: print their top-k most similar indexed images."""
    labels: tuple[str, ...] = ()
    """Zero-shot labels: label every indexed image with the most similar 'a <label>.' prompt into labels.csv."""
    k: int = 5
    """Results per query."""
    zero_shot: tuple[str, ...] = ()
    """Zero-shot accuracy of the model on these test sets ('mnist', 'fashion_mnist'), with the prompts of
    genlab.eval.retrieval (works for any model, e.g. a pretrained ViT-B-32)."""


def resolve_source(source: str) -> Path:
    if source.startswith("captions") and ":" in source:
        from genlab.data.shards import ensure_shards

        name, split = source.split(":", 1)
        return ensure_shards(name, split)
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"--source {source}: no such folder (or use 'captions:<split>')")
    return path


def run_index_job(args: IndexArgs) -> EmbeddingIndex:
    model_name, weights = resolve_weights(args.pretrained, args.model)
    model, preprocess, tokenizer = create_clip(model_name, weights or None)
    out = Path(args.out)
    index = (EmbeddingIndex.load(out) if (out / "index.json").exists()
             else EmbeddingIndex(model.text_projection.shape[1], model_name, weights))
    if index.model != model_name:
        raise ValueError(f"{out} was built with {index.model!r}, not {model_name!r}: use another --out")
    if not (args.source or args.query or args.query_image or args.labels or args.zero_shot or args.ann):
        raise SystemExit("nothing to do: give --source to embed, and/or --query / --query-image / --labels / "
                         "--zero-shot / --ann on an index (--help lists them)")
    if args.source:
        src = resolve_source(args.source)
        t0 = time.perf_counter()
        if args.ray:
            from genlab.distributed.embed import embed_with_ray
            from genlab.distributed.env import init_ray, quiet_console

            init_ray()
            out.mkdir(parents=True, exist_ok=True)
            quiet_console.attach(out)  # Ray's own chatter goes to <out>/ray_console.log

            ids, emb = embed_with_ray(src, model_name, weights or None, args.batch_size, actors=args.actors,
                                      cpus_per_actor=args.cpus_per_actor, actor_resources=args.actor_resources)
        else:
            from genlab.multimodal.embed import embed_in_process

            ids, emb = embed_in_process(src, model_name, weights or None, args.batch_size)
        dt = time.perf_counter() - t0
        # ids name their source, so two folders (or splits) with the same file names never collide
        tag = args.source if args.source.startswith("captions") else str(src.resolve())
        added = index.add([f"{tag}/{i}" for i in ids], emb)
        print(f"embedded {len(ids)} images in {dt:.1f} s ({len(ids) / max(dt, 1e-9):.0f} img/s); added {added} "
              f"new; index holds {len(index)}")
        index.save(out)
        print(f"index written to {out}")
    if args.ann:
        index.build_ann(args.ann)
        queries = index.embeddings[torch.randperm(len(index), generator=torch.Generator().manual_seed(0))[:200]]
        print(f"faiss {args.ann}: recall@10 vs exact {index.recall_vs_exact(queries, 10):.3f}")
    for q in args.query:
        scores, ids = index.search(encode_texts(model, tokenizer, [q]), args.k)
        print(f"{q!r}: " + ", ".join(f"{i} ({s:.3f})" for i, s in zip(ids[0], scores[0].tolist())))
    if args.query_image:
        from genlab.multimodal.embed import load_image_file
        from genlab.multimodal.models import encode_images

        size = tower_image_size(model_name)
        for path in args.query_image:
            image = torch.from_numpy(load_image_file(path, size)).permute(2, 0, 1)[None]
            scores, ids = index.search(encode_images(model, image), args.k)
            print(f"{path}: " + ", ".join(f"{i} ({s:.3f})" for i, s in zip(ids[0], scores[0].tolist())))
    if args.labels:
        text = encode_texts(model, tokenizer, [f"a {label}." for label in args.labels])
        best = (index.embeddings @ text.t()).argmax(1).tolist()
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "labels.csv", "w", newline="") as f:
            csv.writer(f).writerows([("id", "label"), *((i, args.labels[b]) for i, b in zip(index.ids, best))])
        print(f"zero-shot labels of {len(index)} images written to {out / 'labels.csv'}")
    for name in args.zero_shot:
        from genlab.data.mnist import load_dataset
        from genlab.eval.retrieval import zero_shot_accuracy

        acc = zero_shot_accuracy(model, tokenizer, name, *load_dataset(name, "test"))
        print(f"zero-shot {name} test: top-1 {acc['top1']:.4f}, top-3 {acc['top3']:.4f}")
    return index
