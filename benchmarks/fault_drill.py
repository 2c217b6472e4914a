"""Fault drill on a two-node Ray cluster on this machine (`ray.cluster_utils.Cluster`, loopback): what a lost worker,
a lost node and a lost Tune trial cost, and whether the result is the uninterrupted one.

    python benchmarks/fault_drill.py

- train, worker killed: a 2-worker Ray Train run (one worker per node, FailureConfig(max_failures=1)); once its
  first checkpoint is committed, the worker process on node b gets SIGKILL.
- train, node lost: the same, but node b itself is removed (raylet and all); a replacement node joins
  `--replace-after` s later (what the autoscaler does on a cloud), and the run continues there.
- tune, trial killed: a one-trial sweep (max_failures=1) whose trial process gets SIGKILL after its first checkpoint.

Each is compared with an uninterrupted run of the same config and seed (data sharded by rank: deterministic).
Recovery = kill -> the new worker group's (or trial's) first step. Results: benchmarks/results/fault_drill.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from genlab.core.rundir import read_metrics  # any JSON-lines file (worker_groups.jsonl, Tune's result.json)

RESULTS = Path(__file__).parent / "results"
LOOP = "genlab.autoencoders.train:train"
ONE_PER_NODE = {"genlab_worker": 1}
NODE = {"num_cpus": 2, "object_store_memory": 150 * 2**20, "resources": dict(ONE_PER_NODE)}


def config(epochs: int):
    from genlab.autoencoders import ModelConfig, TrainConfig

    return TrainConfig(model=ModelConfig(kind="vae", arch="mlp", hidden=(256,), latent_dim=8), epochs=epochs,
                       batch_size=64, max_steps_per_epoch=120, eval_images=500, figures=False, progress=False)


def committed(run_dir: Path) -> bool:
    path = run_dir / "checkpoint_manager_snapshot.json"
    return path.exists() and bool(json.loads(path.read_text())["checkpoint_results"])


def train_drill(name: str, epochs: int, root: Path, fault=None) -> dict:
    """Run the 2-worker job; `fault(run_dir)` (in a thread, once the first checkpoint is committed) breaks it."""
    from genlab.core.rundir import make_run_dir
    from genlab.distributed.trainer import RayConfig, fit

    run_dir = make_run_dir(name.replace(", ", "-").replace(" ", "-").replace("(", "").replace(")", ""), 0, root=root)
    ray_cfg = RayConfig(num_workers=2, cpus_per_worker=1, data_backend="local", worker_resources=ONE_PER_NODE,
                        max_failures=1)
    out: dict = {}
    t0 = time.time()
    thread = threading.Thread(target=lambda: out.update(m=fit(LOOP, config(epochs), run_dir, ray_cfg, "mnist")))
    thread.start()
    killed_at = None
    if fault is not None:
        while not committed(run_dir) and thread.is_alive():
            time.sleep(0.05)
        killed_at = time.time()
        fault(run_dir)
    thread.join()
    if "m" not in out:
        raise RuntimeError(f"{name}: the run did not finish; see {run_dir}")
    groups = read_metrics(run_dir / "worker_groups.jsonl")
    epochs_seen = [r["epoch"] for r in read_metrics(run_dir / "metrics.jsonl") if "eval/neg_elbo_nats" in r]
    row = {"drill": name, "wall_s": time.time() - t0, "final_neg_elbo": out["m"]["eval/neg_elbo_nats"],
           "worker_group_starts": len(groups), "resumed_at_step": groups[-1]["start_step"],
           "epochs_reported": epochs_seen}
    if killed_at is not None:
        row["recovery_s"] = groups[-1]["started_at"] - killed_at
    return row


def tune_drill(name: str, epochs: int, root: Path, kill: bool) -> dict:
    from genlab.distributed.tune_sweeps import SweepConfig, run_sweep, vae_space, vae_trial

    sweep = SweepConfig(num_samples=1, max_concurrent=1, storage=str(root), name=name, max_failures=1)
    path = root / name
    out: dict = {}
    t0 = time.time()
    thread = threading.Thread(target=lambda: out.update(r=run_sweep(vae_trial, config(epochs), vae_space(),
                                                                    "val/neg_elbo_nats", "min", sweep, epochs)))
    thread.start()
    row: dict = {"drill": name}
    if kill:
        reported = []  # the trial's first report with a checkpoint, as Tune wrote it (result.json has the pid)
        while thread.is_alive() and not reported:
            reported = [(t, rows[-1]) for t in path.glob("*/checkpoint_000000")
                        if (rows := read_metrics(t.parent / "result.json"))]
            time.sleep(0.05)
        (trial, last), = [(t.parent, r) for t, r in reported]
        pid = last["pid"]
        killed_at = time.time()
        os.kill(pid, signal.SIGKILL)
        while thread.is_alive():  # the restarted trial reports again from another process
            pids = {r["pid"] for r in read_metrics(trial / "result.json")}
            if len(pids) > 1:
                row["recovery_s"] = time.time() - killed_at  # its first report after the restart
                break
            time.sleep(0.05)
    thread.join()
    (best,) = out["r"]["results"]
    row |= {"wall_s": time.time() - t0, "final_neg_elbo": best["val/neg_elbo_nats"], "iterations": best["iterations"]}
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--replace-after", type=float, default=5.0, help="seconds until a replacement node joins")
    args = parser.parse_args(argv)

    from genlab.distributed.env import configure_ray_env

    configure_ray_env()
    os.environ.setdefault("RAY_enable_metrics_collection", "0")
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
    nodes = {"b": cluster.add_node(**NODE)}
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    root = Path(tempfile.mkdtemp(prefix="fault-drill-"))

    def kill_worker_on_b(run_dir: Path) -> None:
        (start,) = read_metrics(run_dir / "worker_groups.jsonl")
        os.kill(start["pid_of_rank"][start["node_of_rank"].index(nodes["b"].node_id)], signal.SIGKILL)

    def lose_node_b(run_dir: Path) -> None:
        cluster.remove_node(nodes["b"], allow_graceful=False)
        time.sleep(args.replace_after)
        nodes["b"] = cluster.add_node(**NODE)

    try:
        rows = [train_drill("train, uninterrupted", args.epochs, root),
                train_drill("train, worker killed", args.epochs, root, kill_worker_on_b),
                train_drill("train, node lost (replaced)", args.epochs, root, lose_node_b),
                tune_drill("tune-uninterrupted", args.epochs, root, kill=False),
                tune_drill("tune-trial-killed", args.epochs, root, kill=True)]
    finally:
        ray.shutdown()
        cluster.shutdown()
    for ref, rows_ in ((rows[0], rows[1:3]), (rows[3], rows[4:])):
        for r in rows_:
            r["final_rel_diff"] = abs(r["final_neg_elbo"] - ref["final_neg_elbo"]) / abs(ref["final_neg_elbo"])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "fault_drill.json").write_text(json.dumps(
        {"date": time.strftime("%Y-%m-%d"), "command": "python " + " ".join(["benchmarks/fault_drill.py", *(argv or sys.argv[1:])]),
         "epochs": args.epochs, "rows": rows}, indent=2) + "\n")
    for r in rows:
        print(f"{r['drill']:30s} final -ELBO {r['final_neg_elbo']:9.4f}  rel. diff {r.get('final_rel_diff', 0):.2e}  "
              f"recovery {r.get('recovery_s', float('nan')):5.1f} s  wall {r['wall_s']:6.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
