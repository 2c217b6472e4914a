"""Several Ray nodes on this machine (`ray.cluster_utils.Cluster`, loopback), told apart by a custom resource that
each node has one of: Ray Train workers placed on two nodes train to the same result as on one node, a worker
killed mid-run is replaced and the run resumes from its last checkpoint to the same result, and Tune trials spread
over the nodes. Storage is a directory every node sees (this machine's disk); on a real cluster it is the NFS
share of cluster.yaml."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from genlab.autoencoders import ModelConfig, TrainConfig
from genlab.core.checkpoint import find_latest_checkpoint
from genlab.core.rundir import make_run_dir, read_metrics
from genlab.distributed.trainer import RayConfig, fit
from tests.serve_helpers import free_port

pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parents[1]
LOOP = "genlab.autoencoders.train:train"
ONE_PER_NODE = {"genlab_worker": 1}  # each node has one: workers that need one cannot share a node


@pytest.fixture(scope="module")
def cluster():
    import ray
    from ray.cluster_utils import Cluster

    node = {"num_cpus": 2, "object_store_memory": 150 * 2**20}
    dashboard = free_port()  # the head's job API, for `ray job submit`
    patch = pytest.MonkeyPatch()  # the nodes' environment: a submitted job's `python` is this venv's
    patch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    patch.delenv("RAY_ADDRESS", raising=False)
    c = Cluster(initialize_head=True, head_node_args={**node, "resources": dict(ONE_PER_NODE),
                                                      "include_dashboard": True, "dashboard_host": "127.0.0.1",
                                                      "dashboard_port": dashboard,
                                                      "dashboard_agent_listen_port": free_port()})
    node_b = c.add_node(**node, resources={**ONE_PER_NODE, "node_b": 1})
    c.wait_for_nodes()
    ray.init(address=c.address)
    yield {"head": c.head_node.node_id, "b": node_b.node_id, "address": c.address,
           "dashboard": f"http://127.0.0.1:{dashboard}"}
    ray.shutdown()
    c.shutdown()
    patch.undo()


def tiny(epochs: int = 4) -> TrainConfig:
    return TrainConfig(model=ModelConfig(kind="vae", arch="mlp", hidden=(256,), latent_dim=8), epochs=epochs,
                       batch_size=64, max_steps_per_epoch=120, eval_images=500, figures=False, progress=False)


def worker_groups(run_dir) -> list[dict]:
    return read_metrics(run_dir / "worker_groups.jsonl")


def committed(run_dir) -> list[dict]:
    """The checkpoints Ray Train's controller has registered (a checkpoint in storage counts only once every rank
    has reported it: a worker that dies before its report leaves it uncommitted, and the run restarts before it)."""
    path = run_dir / "checkpoint_manager_snapshot.json"
    return json.loads(path.read_text())["checkpoint_results"] if path.exists() else []


def epoch_records(run_dir) -> list[dict]:
    return [r for r in read_metrics(run_dir / "metrics.jsonl") if "eval/neg_elbo_nats" in r]


@pytest.fixture(scope="module")
def two_node_run(cluster, tmp_path_factory):
    """The uninterrupted reference: 2 workers, one per node (deterministic 'local' data sharding by rank)."""
    run_dir = make_run_dir("two-nodes", 0, root=tmp_path_factory.mktemp("multinode"))
    metrics = fit(LOOP, tiny(), run_dir, RayConfig(num_workers=2, cpus_per_worker=1, data_backend="local",
                                                   worker_resources=ONE_PER_NODE), "mnist")
    return run_dir, metrics


def test_workers_on_two_nodes_train_like_on_one(cluster, two_node_run, tmp_path):
    run_dir, spread = two_node_run
    (start,) = worker_groups(run_dir)
    assert start["world_size"] == 2 and start["nodes"] == 2
    assert set(start["node_of_rank"]) == {cluster["head"], cluster["b"]}  # rank 1 on the other node
    # without the per-node resource, Ray packs both workers onto one node: the same run, one node
    one_dir = make_run_dir("one-node", 0, root=tmp_path)
    packed = fit(LOOP, tiny(), one_dir, RayConfig(num_workers=2, cpus_per_worker=1, data_backend="local"), "mnist")
    (start,) = worker_groups(one_dir)
    assert start["nodes"] == 1
    assert [r["step"] for r in epoch_records(one_dir)] == [r["step"] for r in epoch_records(run_dir)]
    assert packed["eval/neg_elbo_nats"] == pytest.approx(spread["eval/neg_elbo_nats"], rel=1e-5)
    assert packed["train/loss"] == pytest.approx(spread["train/loss"], rel=1e-5)
    assert find_latest_checkpoint(run_dir) is not None  # rank 0's checkpoint in the storage every node sees


def test_killed_worker_restarts_and_finishes_from_its_checkpoint(cluster, two_node_run, tmp_path):
    ref_dir, reference = two_node_run
    run_dir = make_run_dir("killed", 0, root=tmp_path)
    ray_cfg = RayConfig(num_workers=2, cpus_per_worker=1, data_backend="local", worker_resources=ONE_PER_NODE,
                        max_failures=1)
    out: dict = {}
    thread = threading.Thread(target=lambda: out.update(metrics=fit(LOOP, tiny(), run_dir, ray_cfg, "mnist")))
    thread.start()
    deadline = time.monotonic() + 300
    while not committed(run_dir) and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)  # Ray Train has committed the first epoch's checkpoint (every rank reported it)
    (start,) = worker_groups(run_dir)
    victim = start["pid_of_rank"][start["node_of_rank"].index(cluster["b"])]
    killed_at = time.time()
    os.kill(victim, signal.SIGKILL)  # the worker process on node b dies mid-run
    thread.join(timeout=600)
    assert not thread.is_alive() and "metrics" in out
    first, restart = worker_groups(run_dir)  # the worker group was started twice
    assert restart["nodes"] == 2 and victim not in restart["pid_of_rank"]
    assert first["start_step"] == 0 and restart["start_step"] >= tiny().max_steps_per_epoch  # from a checkpoint
    recovery_s = restart["started_at"] - killed_at
    print(f"killed pid {victim} {killed_at - first['started_at']:.1f}s into the run; a new worker group resumed "
          f"at step {restart['start_step']} {recovery_s:.1f}s after the kill")
    # nothing reported is lost or repeated: every epoch once, in order; the result is the uninterrupted one's
    assert [r["epoch"] for r in epoch_records(run_dir)] == [1, 2, 3, 4]
    assert out["metrics"]["eval/neg_elbo_nats"] == pytest.approx(reference["eval/neg_elbo_nats"], rel=1e-4)


def test_the_index_embedding_pool_spreads_over_the_nodes(cluster, tmp_path):
    """jobs/index.py's Ray Data path on two nodes: one image-tower actor per node (each needs the resource a node
    has one of), every row embedded once and exactly as by the in-process loop."""
    import torch
    from ray.util.state import list_actors

    from genlab.core.checkpoint import save_checkpoint
    from genlab.data.shards import ensure_shards
    from genlab.distributed.embed import embed_with_ray
    from genlab.multimodal.embed import embed_in_process
    from genlab.multimodal.models import create_clip

    torch.manual_seed(0)
    weights = str(save_checkpoint(tmp_path / "ckpt", family="clip", config={"model": "genlab-clip-rn"},
                                  model=create_clip("genlab-clip-rn")[0]) / "model.safetensors")
    source = ensure_shards("captions_small", "test_combos")
    ids, emb = embed_in_process(source, "genlab-clip-rn", weights, 64, progress=False)
    ray_ids, ray_emb = embed_with_ray(source, "genlab-clip-rn", weights, 64, actors=2, cpus_per_actor=1,
                                      threads_per_actor=1, block_mb=0.05, actor_resources=ONE_PER_NODE,
                                      progress=False)
    order = {i: j for j, i in enumerate(ray_ids)}
    assert len(ray_ids) == len(order) == len(ids) == 500
    assert torch.allclose(ray_emb[[order[i] for i in ids]], emb, atol=1e-5)
    pool = [a for a in list_actors(detail=True, limit=1000) if "Embedder" in a.class_name]
    assert {a.node_id for a in pool} == {cluster["head"], cluster["b"]}


def test_tune_trials_spread_over_the_nodes(cluster, tmp_path):
    from genlab.distributed.tune_sweeps import SweepConfig, run_sweep, vae_space, vae_trial

    base = TrainConfig(model=ModelConfig(kind="vae", arch="mlp", hidden=(32,), latent_dim=4), epochs=1,
                       batch_size=32, max_steps_per_epoch=3, eval_images=200)
    sweep = SweepConfig(num_samples=2, max_concurrent=2, trial_resources=ONE_PER_NODE, storage=str(tmp_path),
                        name="spread")
    out = run_sweep(vae_trial, base, vae_space(), "val/neg_elbo_nats", "min", sweep, max_t=1)
    assert len(out["results"]) == 2
    assert {row["node"] for row in out["results"]} == {cluster["head"], cluster["b"]}


def test_job_submitted_to_the_head_trains_on_the_other_node(cluster, tmp_path):
    """`ray job submit` to the head's job API: the driver runs on the head, its Ray Train worker on node b (the
    only node with a `node_b` resource), and the run directory lands in storage both nodes see."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    out = subprocess.run([str(Path(sys.executable).parent / "ray"), "job", "submit", "--address",
                          cluster["dashboard"], "--working-dir", str(ROOT), "--", "python", "jobs/ae.py",
                          "--smoke-test", "--ray.worker-resources", "node_b", "1", "--ray.storage", str(tmp_path)],
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "succeeded" in out.stdout, out.stdout[-3000:] + out.stderr[-3000:]
    run_dir = next(tmp_path.glob("ae-mlp-classic__0__*"))
    (start,) = worker_groups(run_dir)
    assert start["node_of_rank"] == [cluster["b"]]
    assert (run_dir / "reconstructions.png").exists() and find_latest_checkpoint(run_dir) is not None
