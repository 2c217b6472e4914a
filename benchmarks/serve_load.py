"""Load on the Serve search app (chapter 5.7): latency percentiles, throughput and errors of text search over
HTTP, the query's embedding included, or (--pipeline) of text-to-image generation, one image per request;
loopback only, bounded in requests and seconds.

    # start the app (embedded Ray) over a 100k index, measure batched and unbatched encoders one after the other:
    python benchmarks/serve_load.py --weights runs/clip-rn__0__<time> --index-dir runs/index100k
    # or load an app that is already up:
    python benchmarks/serve_load.py --url http://127.0.0.1:8000 --clients 16 --seconds 60
    # the final system: /api/generate through text encoder -> prior -> decoder + refiner
    python benchmarks/serve_load.py --pipeline runs/pipeline__0__<time> --index-dir <empty dir>
    # the caption world's pipeline (its search side needs some CLIP: --weights)
    python benchmarks/serve_load.py --pipeline runs/caption-pipeline --weights <CLIP run> --index-dir <empty dir>
With --pipeline the same run first times one image in this process (the pipeline's own call, one thread as each
replica has): the floor the HTTP p50 is compared with.

-> benchmarks/results/serve_load.json (with --weights; serve_generate.json with --pipeline) and a table on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import statistics
import time
from pathlib import Path
from urllib.parse import urlparse

import aiohttp

HERE = Path(__file__).parent
COLOURS = ["red", "green", "blue", "yellow", "magenta", "cyan", "orange", "white"]
THINGS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "t-shirt", "trouser",
          "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]


SIZES = ["small ", "large ", ""]
PLACES = ["", " on the left", " on the right", " at the top"]
RELATIONS = ["next to", "to the left of"]


def queries(n: int, seed: int = 0) -> list[str]:
    """`n` distinct queries in a seeded order (one object with size, colour and place, or two coloured objects
    and a relation): no query is sent twice in a run, so no cache anywhere can answer one."""
    one = [f"a {s}{c} {t}{p}" for s in SIZES for c in COLOURS for t in THINGS for p in PLACES]
    two = [f"a {c1} {t1} {r} a {c2} {t2}" for c1 in COLOURS for t1 in THINGS for r in RELATIONS
           for c2 in COLOURS for t2 in THINGS]
    pool = one + two
    if n > len(pool):
        raise ValueError(f"{n} requests asked for, but only {len(pool):,} distinct queries exist: lower "
                         "--max-requests / --single-requests / --warmup")
    return random.Random(seed).sample(pool, n)


def phases(args) -> dict[str, list[str]]:
    """Disjoint query lists for the warm-up, the one-client run and the many-client run (the batched and the
    unbatched app get the same lists: a comparison under the same load; each app is deployed afresh)."""
    texts = queries(args.warmup + args.single_requests + args.max_requests)
    a, b = args.warmup, args.warmup + args.single_requests
    return {"warmup": texts[:a], "one": texts[a:b], "many": texts[b:]}


def check_loopback(url: str) -> None:
    if urlparse(url).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"{url}: this load generator only targets loopback (127.0.0.1)")


async def load(url: str, clients: int, seconds: float, texts: list[str], k: int = 10, generate: bool = False) -> dict:
    """`clients` closed-loop clients send text searches (or one-image generations) of `texts`, each once, in
    order, until `seconds` pass or every text is sent."""
    check_loopback(url)
    max_requests = len(texts)
    latencies, errors, statuses = [], 0, {}
    sent = 0
    deadline = time.perf_counter() + seconds

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal sent, errors
        while sent < max_requests and time.perf_counter() < deadline:
            q = texts[sent]
            sent += 1
            t0 = time.perf_counter()
            request = (session.post(f"{url}/api/generate", json={"prompt": q, "num_images": 1, "seed": sent})
                       if generate else session.get(f"{url}/api/search", params={"q": q, "k": k}))
            try:
                async with request as r:
                    body = await r.read()
                    statuses[r.status] = statuses.get(r.status, 0) + 1
                    if r.status != 200 or (b'"images"' if generate else b'"results"') not in body:
                        errors += 1
                        continue
            except (aiohttp.ClientError, asyncio.TimeoutError):
                errors += 1
                statuses["connection"] = statuses.get("connection", 0) + 1
                continue
            latencies.append(time.perf_counter() - t0)

    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=clients)) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        wall = time.perf_counter() - t0
    ms = sorted(1000 * x for x in latencies)
    pct = lambda p: ms[min(len(ms) - 1, int(p / 100 * len(ms)))] if ms else float("nan")  # noqa: E731
    return {"clients": clients, "requests": sent, "ok": len(ms), "errors": errors, "statuses": statuses,
            "seconds": round(wall, 2), "throughput_rps": round(len(ms) / wall, 1),
            "p50_ms": round(pct(50), 2), "p95_ms": round(pct(95), 2), "p99_ms": round(pct(99), 2),
            "mean_ms": round(statistics.fmean(ms), 2) if ms else None}


def fuzz(url: str, max_examples: int, workdir: Path, seed: int = 0, timeout_s: float = 600) -> dict:
    """schemathesis over the app's OpenAPI schema (every operation, `max_examples` cases each, loopback only):
    how many requests went out and which statuses came back, from its HAR record."""
    import os
    import subprocess
    import sys

    check_loopback(url)
    har = Path(workdir) / "fuzz.har"
    cmd = [str(Path(sys.executable).with_name("schemathesis")), "run", f"{url}/openapi.json", "--checks",
           "not_a_server_error", "-n", str(max_examples), "--seed", str(seed), "--no-shrink",
           "--generation-database", "none", "--report", "har", "--report-har-path", str(har),
           "--request-timeout", "30", "--max-failures", "1000", "--continue-on-failure"]
    env = os.environ | {"SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"}
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, cwd=workdir, env=env)
    entries = json.loads(har.read_text())["log"]["entries"] if har.exists() else []
    statuses: dict[int, int] = {}
    for e in entries:
        statuses[e["response"]["status"]] = statuses.get(e["response"]["status"], 0) + 1
    return {"requests": len(entries), "server_errors": sum(n for s, n in statuses.items() if s >= 500),
            "statuses": dict(sorted(statuses.items())), "seconds": round(time.perf_counter() - t0, 1),
            "exit_code": res.returncode, "output_tail": res.stdout[-3000:] + res.stderr[-2000:]}


def measure(url: str, args, texts: dict[str, list[str]]) -> dict:
    generate = bool(args.pipeline)
    one = asyncio.run(load(url, 1, args.single_seconds, texts["one"], generate=generate))
    many = asyncio.run(load(url, args.clients, args.seconds, texts["many"], generate=generate))
    return {"one_client": one, f"{args.clients}_clients": many}


def in_process_floor(pipeline: str, texts: list[str], runs: int) -> dict:
    """One image per call of the pipeline object itself, in this process with one torch thread (as a replica):
    median and p95 over `runs` calls after 5 warm-up calls, each prompt and seed new."""
    import torch

    from genlab.pipeline import load_pipeline

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pipe = load_pipeline(pipeline)
        for i in range(5):
            pipe(texts[i % len(texts)], 1, seed=10_000 + i)
        ms = []
        for i in range(runs):
            t0 = time.perf_counter()
            pipe(texts[i % len(texts)], 1, seed=i)
            ms.append(1000 * (time.perf_counter() - t0))
    finally:
        torch.set_num_threads(threads)
    ms.sort()
    return {"runs": runs, "p50_ms": round(statistics.median(ms), 2), "p95_ms": round(ms[int(0.95 * (runs - 1))], 2),
            "threads": 1, "what": "the pipeline's own call for one image (prompt -> image), in this process"}


def start_app(args, batching: bool) -> str:
    from ray import serve

    from genlab.serve.search_app import build_app

    serve.run(build_app({"weights": args.weights, "index_dir": args.index_dir, "allowed_root": "runs",
                         "batching": batching, "pipeline": args.pipeline}), name="search", route_prefix="/",
              logging_config={"enable_access_log": False})
    return "http://127.0.0.1:8000"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--url", default="", help="load an app already up here (loopback only)")
    p.add_argument("--weights", default="", help="start the app (embedded Ray) with these CLIP weights")
    p.add_argument("--index-dir", default="runs/index100k", help="the index the started app serves")
    p.add_argument("--pipeline", default="", help="start the app with this text-to-image pipeline (a jobs/pipeline.py "
                   "run) and load /api/generate instead of search")
    p.add_argument("--batching", choices=["both", "on", "off"], default="both",
                   help="encoders with @serve.batch, without, or both one after the other (same load)")
    p.add_argument("--fast-ingress", action="store_true", help="Serve's HAProxy mode (see jobs/serve_search.py)")
    p.add_argument("--fuzz-examples", type=int, default=0,
                   help="after the load: schemathesis cases per API operation (0 = no fuzz run)")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--max-requests", type=int, default=30_000)
    p.add_argument("--single-seconds", type=float, default=20, help="the one-client latency run")
    p.add_argument("--single-requests", type=int, default=500)
    p.add_argument("--warmup", type=int, default=50, help="requests sent (and not counted) before measuring")
    p.add_argument("--in-process-runs", type=int, default=50, help="--pipeline: one-image calls timed in-process")
    args = p.parse_args()
    texts = phases(args)
    if args.url:
        asyncio.run(load(args.url, 1, 30, texts["warmup"]))
        print(json.dumps(measure(args.url, args, texts), indent=1))
        return
    if not (args.weights or args.pipeline):
        p.error("give --url of a running app, or --weights (or --pipeline) to start one")
    from genlab.distributed.env import init_ray
    from genlab.serve.search_app import configure_serve_env

    floor = in_process_floor(args.pipeline, texts["warmup"], args.in_process_runs) if args.pipeline else None
    configure_serve_env(args.fast_ingress)
    init_ray()
    from ray import serve

    serve.start(http_options={"host": "127.0.0.1", "port": 8000})
    out = {"mode": "fast ingress (HAProxy)" if args.fast_ingress else "Serve's default proxy"}
    if floor:
        from genlab.pipeline.directory import pipeline_meta

        meta = pipeline_meta(args.pipeline)
        out["in_process_one_image"] = floor
        out["pipeline_kind"] = meta.get("generator", "prior_vae")
        out["pipeline_sampler"] = meta.get("sampler")
    for batching in {"both": (True, False), "on": (True,), "off": (False,)}[args.batching]:
        url = start_app(args, batching)
        asyncio.run(load(url, 4, 30, texts["warmup"], generate=bool(args.pipeline)))
        out["batched" if batching else "unbatched"] = measure(url, args, texts)
        print(json.dumps(out, indent=1), flush=True)
        if args.fuzz_examples and "fuzz" not in out:  # against the first app measured (batched unless --batching off)
            import tempfile

            with tempfile.TemporaryDirectory() as tmp:
                fuzzed = fuzz(url, args.fuzz_examples, Path(tmp))
            status, _ = asyncio.run(_get(f"{url}/api/health"))
            out["fuzz"] = {k: v for k, v in fuzzed.items() if k != "output_tail"} | {
                "health_after": status, "app": "batched" if batching else "unbatched"}
            print(json.dumps(out["fuzz"], indent=1), fuzzed["output_tail"][-1500:], flush=True)
    serve.shutdown()
    index = Path(args.index_dir) / "index.json"
    what = "one-image generations" if args.pipeline else "text search k=10"
    out |= {"index_dir": args.index_dir, "index_size": json.loads(index.read_text())["count"] if index.exists() else 0,
            "pipeline": args.pipeline, "pipeline_smoke_trained": _smoke_trained(args.pipeline),
            "queries": "each query sent once per app: warm-up, one-client and many-client lists disjoint",
            "load": f"{args.clients} closed-loop clients, {args.seconds:.0f} s, {what}",
            "date": time.strftime("%Y-%m-%d"), "command": _command(),
            "machine": f"{platform.machine()}, 2 cores shared by the app, Ray and this load generator",
            "cpu": _cpu()}
    (HERE / "results").mkdir(exist_ok=True)
    name = ("serve_generate" if args.pipeline else "serve_load") + (
        "_caption" if out.get("pipeline_kind") == "caption_diffusion" else "") + (
        "_fast" if args.fast_ingress else "") + ".json"
    (HERE / "results" / name).write_text(json.dumps(out, indent=2) + "\n")


def _command() -> str:
    from results_common import command  # benchmarks/ is this script's folder

    return command()


def _cpu() -> str:
    """The CPU model and the vector extensions that matter to torch here (the CPU differs between machines)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    ext = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags]
    return f"{name} ({', '.join(ext)})"


def _smoke_trained(pipeline: str) -> bool | None:
    """Whether the served pipeline came from a `--smoke-test` run (its timings are then of the mechanics only)."""
    for folder in (Path(pipeline), Path(pipeline).parent) if pipeline else ():  # the run, or a pipeline inside it
        config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").exists() else {}
        if "smoke_test" in config:
            return bool(config["smoke_test"])
    return None


async def _get(url: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session, session.get(url) as r:
        return r.status, await r.read()


if __name__ == "__main__":
    main()
