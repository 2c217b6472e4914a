"""Chapter 5.7 benchmarks (run on an idle machine):

    python benchmarks/chapter5_clip.py --only train --run runs/clip-rn__0__...   # record a finished jobs/clip.py run
    python benchmarks/chapter5_clip.py --only train --run <a --train.hard-negatives run> --record-as clip_train_v3_hn
    python benchmarks/chapter5_clip.py --only profile     # where a training step's time goes
    python benchmarks/chapter5_clip.py --only index --run runs/clip-rn__0__...  # 100k embedded, queried
    python benchmarks/chapter5_clip.py --only index_scale --run runs/clip-rn__0__... --repeat 5   # 500k, timing only
    python benchmarks/chapter5_clip.py --only index_floor --run runs/clip-rn__0__...   # the pool without a model
    python benchmarks/chapter5_clip.py --only workers     # 1 vs 2 Ray Train workers, same loss curve?

-> benchmarks/results/clip_train.json, clip_profile.json, clip_index.json, clip_index_scale.json, clip_index_floor.json,
   clip_workers.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE.parent / "platform"))

from genlab.core.config import load_json  # noqa: E402
from genlab.distributed.trainer import final_metrics  # noqa: E402
from genlab.multimodal.config import ClipConfig  # noqa: E402
from results_common import command  # noqa: E402


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def save(name: str, out: dict) -> None:
    out |= {"date": time.strftime("%Y-%m-%d"), "machine": machine()}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=1))


def record_train(run: Path, name: str = "clip_train") -> None:
    """The final metrics of a finished jobs/clip.py run, its config and its training wall time."""
    metrics = final_metrics(run)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if "perf/epoch_s" in r]
    config = load_json(run / "config.json")
    save(name, {"run": run.name, "config": config, "metrics": metrics,
                "train_wall_s": sum(r["perf/epoch_s"] for r in epochs),
                "pairs_per_s": statistics.median(r["perf/pairs_per_s"] for r in epochs),
                "data_wait_frac": statistics.median(r["perf/data_wait_frac"] for r in epochs),
                "curve": [{k: r[k] for k in r if k.startswith(("eval/", "epoch"))} for r in epochs],
                "loss_curve": [[r["step"], r["train/loss"]] for r in records if "train/loss" in r],
                "command": "python jobs/clip.py" + (f" --train.model {config['model']}"
                                                    if config["model"] != "genlab-clip-rn" else "")
                + (f" --train.epochs {config['epochs']}" if config["epochs"] != ClipConfig.epochs else "")
                + ("" if config.get("hard_negatives") == ClipConfig.hard_negatives
                   else f" --train.{'' if config.get('hard_negatives') else 'no-'}hard-negatives")})


def profile(batch: int, reps: int) -> None:
    """Median time of each part of one training step at the default batch, one process."""
    import open_clip

    from genlab.data import captions
    from genlab.data.shards import decode_batch
    from genlab.multimodal.models import create_clip, prepare_images
    from genlab.multimodal.train import param_groups

    out = {"batch": batch, "models": {}}
    rows = captions.make_rows("train", batch, seed=0)
    raw = {"image": [r["image"].tobytes() for r in rows],
           "tokens": [t.to(torch.int32).numpy().tobytes() for t in captions.tokenize([r["caption"] for r in rows])]}
    for name in ("genlab-clip-rn", "genlab-clip-vit"):
        model, _, _ = create_clip(name)
        opt = torch.optim.AdamW(param_groups(model, 0.1), lr=1e-4)
        loss_fn = open_clip.ClipLoss()
        parts = {k: [] for k in ("data_decode", "image_tower_fwd", "text_tower_fwd", "loss", "backward", "optimizer")}
        for i in range(reps + 2):
            t = [time.perf_counter()]
            images, tokens = decode_batch(raw)
            x = prepare_images(images, model)
            t.append(time.perf_counter())
            img = model.encode_image(x, normalize=True)
            t.append(time.perf_counter())
            txt = model.encode_text(tokens, normalize=True)
            t.append(time.perf_counter())
            loss = loss_fn(img, txt, model.logit_scale.exp())
            t.append(time.perf_counter())
            opt.zero_grad()
            loss.backward()
            t.append(time.perf_counter())
            opt.step()
            t.append(time.perf_counter())
            if i >= 2:
                for k, a, b in zip(parts, t, t[1:]):
                    parts[k].append(b - a)
        med = {k: statistics.median(v) for k, v in parts.items()}
        step = sum(med.values())
        out["models"][name] = {"parts_s": med, "step_s": step, "pairs_per_s": batch / step,
                               "params_image": sum(p.numel() for p in model.visual.parameters()),
                               "params_total": sum(p.numel() for p in model.parameters())}
        print(name, {k: round(v, 4) for k, v in med.items()}, flush=True)
    out["command"] = command()
    save("clip_profile", out)


def bench_index(run: Path, n_queries: int, batch: int, actors: int, threads_per_actor: int) -> None:
    """100k caption images embedded in-process (before and after Ray Data: the in-process rate moves between runs
    here, the ratio is against their mean) and by Ray Data (same model); exact and faiss queries."""
    from genlab.data.shards import ensure_shards
    from genlab.multimodal.embed import embed_in_process
    from genlab.multimodal.index import EmbeddingIndex
    from genlab.multimodal.models import create_clip, encode_texts, resolve_weights

    source = ensure_shards("captions", "train")
    name, weights = resolve_weights(str(run), "")
    out = {"source": "captions:train", "model": name, "batch": batch}
    t0, tin = time.perf_counter(), {}
    ids, emb = embed_in_process(source, name, weights, batch, timings=tin)
    out["in_process"] = {"images": len(ids), "wall_s": time.perf_counter() - t0, **tin}
    ray_ids, ray_emb, out["ray_data"] = _ray_arm(source, name, weights, batch, actors, threads_per_actor)
    t0, tin = time.perf_counter(), {}
    embed_in_process(source, name, weights, batch, timings=tin)
    out["in_process_after"] = {"images": len(ids), "wall_s": time.perf_counter() - t0, **tin}
    for k in ("in_process", "ray_data", "in_process_after"):
        r = out[k]
        r["images_per_s"] = r["images"] / r["wall_s"]
        # steady state: from the first embedded batch on (start-up excluded, reported as first_batch_s)
        r["steady_images_per_s"] = (r["images"] - r["first_batch_rows"]) / (r["wall_s"] - r["first_batch_s"])
    local = (out["in_process"]["images_per_s"] + out["in_process_after"]["images_per_s"]) / 2
    out["ray_vs_in_process"] = out["ray_data"]["images_per_s"] / local
    out["ray_vs_in_process_steady"] = (out["ray_data"]["steady_images_per_s"]
                                       / out["in_process"]["steady_images_per_s"])
    order = {i: j for j, i in enumerate(ray_ids)}
    out["max_abs_diff_ray_vs_in_process"] = float((ray_emb[[order[i] for i in ids]] - emb).abs().max())
    index = EmbeddingIndex(emb.shape[1], name, weights)
    index.add(ids, emb)
    model, _, tokenizer = create_clip(name, weights)
    test = __import__("genlab.data.captions", fromlist=["read_caption_table"]).read_caption_table(
        ensure_shards("captions", "test_templates"))
    queries = encode_texts(model, tokenizer, test["captions"][:n_queries])
    out["exact"] = _latency(lambda q: index.search(q, 10), queries)
    for kind in ("ivf", "hnsw"):
        t0 = time.perf_counter()
        index.build_ann(kind)
        build = time.perf_counter() - t0
        out[kind] = {"build_s": build, "recall@10": index.recall_vs_exact(queries, 10),
                     **_latency(lambda q: index.search_ann(q, 10), queries)}
    out["n"] = len(index)
    out["dim"] = index.dim
    out["command"] = command()
    save("clip_index", out)


def bench_index_scale(run: Path, batch: int, actors: int, threads_per_actor: int, repeat: int) -> None:
    """The same two arms over the 100k set listed `repeat` times (symlinked files): does the pool's fixed start-up
    amortise once the loop runs for minutes?"""
    import tempfile

    from genlab.data.shards import ensure_shards
    from genlab.multimodal.embed import embed_in_process
    from genlab.multimodal.models import resolve_weights

    source = ensure_shards("captions", "train")
    name, weights = resolve_weights(str(run), "")
    out = {"source": f"captions:train x {repeat}", "model": name, "batch": batch, "repeat": repeat}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeat):
            for f in sorted(source.glob("*.parquet")):
                Path(tmp, f"r{r}-{f.name}").symlink_to(f)
        t0 = time.perf_counter()
        ids, _ = embed_in_process(tmp, name, weights, batch)
        out["in_process"] = {"images": len(ids), "wall_s": time.perf_counter() - t0}
        _, _, out["ray_data"] = _ray_arm(tmp, name, weights, batch, actors, threads_per_actor)
    for k in ("in_process", "ray_data"):
        out[k]["images_per_s"] = out[k]["images"] / out[k]["wall_s"]
    out["ray_vs_in_process"] = out["ray_data"]["images_per_s"] / out["in_process"]["images_per_s"]
    out["command"] = command()
    save("clip_index_scale", out)


class _NoModel:
    """A pool member that imports `IMPORTS` and embeds nothing (zero vectors): what Ray Data's read, actor pool and
    hand-back cost before any model does."""
    IMPORTS = ""

    def __init__(self, model: str, pretrained: str | None = None, threads: int = 0):
        for module in filter(None, self.IMPORTS.split(",")):
            __import__(module)

    def __call__(self, batch: dict) -> dict:
        return {"id": np.asarray(batch["id"]), "embedding": np.zeros((len(batch["id"]), 128), np.float32)}


def bench_index_floor(run: Path, batch: int, actors: int) -> None:
    """The Ray Data arm of `bench_index` with pool members that run no model: importing nothing, torch, or torch
    and open_clip (what the real `Embedder` imports). Its first batch bounds the real pipeline's start-up from below."""
    from genlab.data.shards import ensure_shards
    from genlab.multimodal.models import resolve_weights

    source = ensure_shards("captions", "train")
    name, weights = resolve_weights(str(run), "")
    out = {"source": "captions:train", "batch": batch, "actors": actors, "rows": {}}
    for imports in ("", "torch", "torch,open_clip"):
        _, _, out["rows"][imports or "nothing"] = _ray_arm(
            source, name, weights, batch, actors, threads_per_actor=0, progress=False,
            embedder=type("_NoModel", (_NoModel,), {"IMPORTS": imports}))
    out["command"] = command()
    save("clip_index_floor", out)


def _ray_arm(source, name: str, weights: str, batch: int, actors: int, threads_per_actor: int,
             **embed_kwargs) -> tuple:
    """(ids, embeddings, timing row) of the Ray Data arm. The cluster's start-up is not part of the embedding;
    the pipeline's (actors, imports) is. Ray's CPU count is bookkeeping (the actors' torch threads are set apart):
    the actors take one of the node's two, the other is left to Ray Data's file listing and read tasks.
    `embed_kwargs` go to `embed_with_ray` (e.g. another `embedder`)."""
    from genlab.distributed.embed import embed_with_ray
    from genlab.distributed.env import init_ray

    init_ray()
    t0, timings = time.perf_counter(), {}
    ids, emb = embed_with_ray(source, name, weights, batch, actors=actors, cpus_per_actor=1 / actors,
                              threads_per_actor=threads_per_actor, timings=timings, **embed_kwargs)
    return ids, emb, {"images": len(ids), "wall_s": time.perf_counter() - t0, "actors": actors,
                      "threads_per_actor": threads_per_actor, **timings}


def workers(steps: int) -> None:
    """The same short run on 1 and on 2 Ray Train workers (same global batch and seed): ClipLoss gathers
    features across ranks, so the loss curves should agree within noise."""
    import dataclasses

    from genlab.distributed.jobs import run_training_job
    from genlab.distributed.trainer import RayConfig
    from genlab.multimodal import ClipConfig

    cfg = ClipConfig(epochs=1, max_steps_per_epoch=steps, log_every=25, warmup_steps=50, eval_images=500,
                     final_images=2000, probe_images=0, figures=False, progress=False)
    out = {"steps": steps, "batch": cfg.batch_size, "runs": {}}
    for n in (1, 2):
        t0 = time.perf_counter()
        run_dir, metrics = run_training_job(cfg.run_name(), "genlab.multimodal.train:train", cfg,
                                            RayConfig(num_workers=n), cfg.dataset)
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        out["runs"][str(n)] = {"wall_s": time.perf_counter() - t0, "run": run_dir.name,
                               "loss_curve": [[r["step"], r["train/loss"]] for r in records if "train/loss" in r],
                               **{k: v for k, v in metrics.items() if k.startswith(("test/zero", "perf/", "dist/"))}}
    a, b = (np.array([v for _, v in out["runs"][n]["loss_curve"]]) for n in ("1", "2"))
    out["max_abs_loss_diff"] = float(np.abs(a - b).max())
    out["max_rel_loss_diff"] = float((np.abs(a - b) / a).max())
    out["command"] = command()
    save("clip_workers", out)


def _latency(search, queries: torch.Tensor) -> dict:
    for q in queries[:10]:
        search(q[None])
    times = []
    for q in queries:
        t0 = time.perf_counter()
        search(q[None])
        times.append(time.perf_counter() - t0)
    times.sort()
    return {"p50_ms": 1000 * times[len(times) // 2], "p95_ms": 1000 * times[int(len(times) * 0.95)]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["train", "profile", "index", "index_scale", "index_floor", "workers"],
                        required=True)
    parser.add_argument("--run", type=Path, help="a finished jobs/clip.py run directory (train, index)")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--steps", type=int, default=150, help="workers: steps of each run")
    parser.add_argument("--record-as", default="clip_train", help="train: the results file's name (an ablation "
                        "run beside the main one, e.g. clip_train_v3_hn)")
    parser.add_argument("--actors", type=int, default=2, help="index: Ray Data actors running the image tower")
    parser.add_argument("--threads-per-actor", type=int, default=1, help="index: torch threads of each actor")
    parser.add_argument("--repeat", type=int, default=5, help="index_scale: times the 100k set is listed")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    if args.only in ("train", "index", "index_scale", "index_floor") and (args.run is None or not args.run.is_dir()):
        parser.error(f"--only {args.only} needs --run <a jobs/clip.py run directory>")
    if args.only == "train":
        record_train(args.run, args.record_as)
    elif args.only == "profile":
        profile(args.batch, args.reps)
    elif args.only == "workers":
        workers(args.steps)
    elif args.only == "index_floor":
        bench_index_floor(args.run, 512, args.actors)
    elif args.only == "index_scale":
        bench_index_scale(args.run, 512, args.actors, args.threads_per_actor, args.repeat)
    else:
        bench_index(args.run, args.queries, 512, args.actors, args.threads_per_actor)
    return 0


if __name__ == "__main__":
    sys.exit(main())
