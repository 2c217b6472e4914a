"""Body of jobs/serve_search.py and jobs/serve_generate.py: start (or attach to) Ray, deploy the search app (with
the text-to-image pipeline when given one), print its URL, serve."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

# Before anything imports Ray: it reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER (loopback binding) when it is imported,
# and genlab.serve.search_app imports ray.serve.
from genlab.distributed.env import configure_ray_env

configure_ray_env()

from genlab.serve.guard import LOOPBACK_HOSTS  # noqa: E402
from genlab.serve.search_app import REQUEST_TIMEOUT_S, repo_path, serving_weights  # noqa: E402


@dataclass
class ServeArgs:
    weights: str = ""
    """CLIP weights: a run directory of jobs/clip.py, a checkpoint, a weights file or an open_clip tag (needs the
    internet). Empty: the newest runs/clip-* run that has a checkpoint."""
    model: str = "genlab-clip-rn"
    """open_clip model name (a genlab run or checkpoint names its own)."""
    index_dir: str = "runs/index"
    """Index directory (jobs/index.py writes one); created empty when missing, saved after every indexing."""
    source: str = ""
    """Index this first when the index is empty: a folder, parquet directory or 'captions:<split>'."""
    allowed_root: str = "runs"
    """The web page and API may index folders under this directory only."""
    host: str = "127.0.0.1"
    """Address the HTTP proxy binds (0.0.0.0 exposes it to the network)."""
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS
    """Host header names the app answers (others get 421: no DNS rebinding); add the name clients use when you
    bind another address, or "*" behind a proxy that checks hosts itself."""
    request_timeout_s: float = REQUEST_TIMEOUT_S
    """The HTTP proxy ends any request (a slow client's too) after this many seconds."""
    port: int = 8000
    """HTTP port."""
    batching: bool = True
    """Encoders batch concurrent requests with @serve.batch (False: one forward pass per request)."""
    access_log: bool = True
    """One log line per request in each replica's log (off saves a little CPU under load)."""
    fast_ingress: bool = False
    """Ray Serve's throughput mode: HAProxy in front of the ingress replica, gRPC between replicas, user code on
    the replica's own event loop. Faster here (benchmarks/RESULTS.md), but HAProxy's stats and metrics ports bind
    every interface and its process can outlive `ray stop`: off by default."""
    pipeline: str = ""
    """A text-to-image pipeline (jobs/pipeline.py's run directory or its pipeline/): adds the page's Generate tab
    and /api/generate; its CLIP then serves search too. Empty: search only."""
    duration: float = 0
    """Serve this many seconds, then shut down (0: until Ctrl-C)."""


def start_search(args: ServeArgs) -> str:
    """Index `source` if asked, start Ray (embedded, or the cluster in RAY_ADDRESS) and Serve, deploy the app;
    returns its URL once every replica is up."""
    from genlab.distributed.env import init_ray
    from genlab.serve.search_app import configure_serve_env

    model, weights = serving_weights(args.weights, args.model, args.pipeline)  # bad inputs fail before Ray starts
    index_dir = repo_path(args.index_dir)
    if args.source and not (index_dir / "index.json").exists():
        from genlab.distributed.index_job import IndexArgs, run_index_job

        run_index_job(IndexArgs(source=args.source, out=str(index_dir), model=model, pretrained=weights,
                                ray=False))
    configure_serve_env(args.fast_ingress)  # before Ray starts: its processes read these at start-up
    init_ray()
    from ray import serve

    from genlab.serve.search_app import build_app

    serve.start(http_options={"host": args.host, "port": args.port, "request_timeout_s": args.request_timeout_s})
    config = asdict(args) | {"model": model, "weights": weights,  # a digit pipeline's: its own CLIP (checked)
                             "index_dir": str(index_dir), "allowed_hosts": list(args.allowed_hosts)}
    serve.run(build_app(config), name="search", route_prefix="/",
              logging_config={"enable_access_log": args.access_log})
    return f"http://{args.host}:{args.port}/"


def serve_search(args: ServeArgs) -> str:
    """The job: start, print the URL, serve until Ctrl-C (or `duration` seconds), shut Serve down."""
    from ray import serve

    url = start_search(args)
    what = f"genlab search and text-to-image is up: {url}#generate" if args.pipeline else f"genlab search is up: {url}"
    print(f"{what} (API docs: {url}docs); Ctrl-C stops it", flush=True)
    try:
        deadline = time.monotonic() + args.duration if args.duration else float("inf")
        while time.monotonic() < deadline:
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    except KeyboardInterrupt:
        pass
    finally:
        serve.shutdown()
    return url
