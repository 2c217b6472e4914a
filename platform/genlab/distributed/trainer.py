"""Run a family's training loop under Ray Train's TorchTrainer (or in-process with 0 workers)."""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import pyarrow.parquet as pq

from genlab.core.config import from_dict, to_dict
from genlab.core.rundir import read_metrics
from genlab.core.runtime import LocalRuntime
from genlab.data.shards import ensure_shards, read_shards
from genlab.distributed.env import init_ray, quiet_console

log = logging.getLogger(__name__)


@dataclass
class RayConfig:
    num_workers: int = 1
    """Ray Train workers (each takes 1 CPU, or 1 GPU with use_gpu); 0 runs in this process without Ray."""
    cpus_per_worker: int = 0
    """CPUs (and torch threads) per worker; 0 = the cluster's CPUs split evenly across the workers."""
    use_gpu: bool = False
    """Give each worker a GPU (bf16 mixed precision there); needs CUDA on the cluster."""
    worker_resources: dict[str, float] = field(default_factory=dict)
    """Custom Ray resources each worker also needs, e.g. `--ray.worker-resources spot_gpu 1` to place workers
    only on nodes started with `--resources '{"spot_gpu": 1}'` (one per node if each node has one)."""
    precision: str = "auto"
    """'auto': bf16 autocast on GPUs, fp32 on CPUs; 'bf16': bf16 autocast on CPUs too (pays only where the CPU has
    AMX or AVX-512 BF16); 'fp32': no autocast anywhere."""
    data_backend: str = "auto"
    """'ray': workers stream their shard of a Ray Dataset; 'local': each worker reads the parquet shards (on a
    filesystem every node sees) into memory; 'auto': 'local' for a training set under 512 MB (no Ray Data
    actors to start before the first step, and faster steps in benchmarks/ray_overhead.py), else 'ray'."""
    storage: str = "runs"
    """Where run directories (metrics, figures, checkpoints) go; a shared filesystem on a multi-node cluster."""
    resume: str = ""
    """A run directory to continue from its latest checkpoint (same config)."""
    max_failures: int = 0
    """Worker-group restarts Ray Train may do after a failure, each from the latest checkpoint."""
    keep_checkpoints: int = 2
    """Checkpoints kept per run (the newest)."""
    dashboard: bool = False
    """Start the embedded local Ray with its dashboard on http://127.0.0.1:8265 (Ray Train's run and worker views,
    logs, metrics; ~1 GB more memory); a `ray start --head` cluster has its own already."""
    stop_after_s: float = 0
    """End the run after the first epoch that finishes past this many seconds of training (it is checkpointed;
    `--ray.resume <run dir>` continues it exactly); 0 = train to the end. For long runs spread over sessions."""

    def __post_init__(self):
        if self.data_backend not in ("auto", "ray", "local"):
            raise ValueError(f"data_backend must be 'auto', 'ray' or 'local', got {self.data_backend!r}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', got {self.precision!r}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")


def _resolve(path: str):
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def _worker_loop(loop_config: dict) -> None:
    """train_loop_per_worker: rebuild the config, load eval data on rank 0, run the family's loop."""
    from genlab.distributed.train_runtime import RayTrainRuntime

    cfg = from_dict(_resolve(loop_config["config_cls"]), loop_config["config"])
    rt = RayTrainRuntime(loop_config["run_dir"], data_backend=loop_config["data_backend"],
                         shard_dirs=loop_config["shard_dirs"], sizes=loop_config["sizes"], seed=cfg.seed,
                         stop_after_s=loop_config["stop_after_s"], precision=loop_config["precision"])
    test_dir = loop_config["shard_dirs"].get("test")
    test = read_shards(test_dir) if rt.is_main and test_dir else None
    _resolve(loop_config["loop"])(cfg, rt, test)


def fit(loop: str, config, run_dir: Path, ray_cfg: RayConfig, dataset: str | None) -> dict:
    """Train `config` with the loop at `loop` ('module:function'); returns the final metrics of the run.
    `dataset=None`: the loop reads its own data (episodic meta-learning), no image shards are streamed."""
    shard_dirs = {split: str(ensure_shards(dataset, split)) for split in ("train", "test")} if dataset else {}
    config_cls = f"{type(config).__module__}:{type(config).__name__}"
    if ray_cfg.num_workers == 0:
        data = {split: read_shards(d) for split, d in shard_dirs.items()}
        rt = LocalRuntime(run_dir, {k: v for k, v in data.items() if k == "train"}, seed=config.seed,
                          keep=ray_cfg.keep_checkpoints, device="cuda" if ray_cfg.use_gpu else "cpu",
                          resume_from=ray_cfg.resume or None, stop_after_s=ray_cfg.stop_after_s,
                          precision=ray_cfg.precision)
        _resolve(loop)(config, rt, data.get("test"))
        return final_metrics(run_dir)

    ray = init_ray(dashboard=ray_cfg.dashboard)
    quiet_console.attach(run_dir)
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    sizes = {split: _count_rows(d) for split, d in shard_dirs.items()}
    small = bool(shard_dirs) and _bytes(shard_dirs["train"]) <= SMALL_DATASET_BYTES
    backend = ray_cfg.data_backend
    if backend == "auto":
        backend = "ray" if shard_dirs and not small else "local"
    datasets = None
    if backend == "ray" and shard_dirs:
        # Read once, before the workers take their CPUs: on a small machine the workers hold every CPU, and
        # streaming read tasks scheduled during training would wait forever. The blocks then sit in the object
        # store and each worker streams its shard of them.
        datasets = {"train": _train_dataset(ray, shard_dirs["train"], small)}
    trainer = TorchTrainer(
        train_loop_per_worker=_worker_loop,
        train_loop_config={"loop": loop, "config_cls": config_cls, "config": to_dict(config),
                           "run_dir": str(run_dir), "data_backend": backend,
                           "shard_dirs": shard_dirs, "sizes": sizes, "stop_after_s": ray_cfg.stop_after_s,
                           "precision": ray_cfg.precision},
        scaling_config=ScalingConfig(num_workers=ray_cfg.num_workers, use_gpu=ray_cfg.use_gpu,
                                     resources_per_worker={"CPU": _cpus_per_worker(ray, ray_cfg),
                                                           **ray_cfg.worker_resources}),
        run_config=RunConfig(name=run_dir.name, storage_path=str(run_dir.parent.resolve()),
                             checkpoint_config=CheckpointConfig(num_to_keep=ray_cfg.keep_checkpoints),
                             failure_config=FailureConfig(max_failures=ray_cfg.max_failures)),
        datasets=datasets,
    )
    result = trainer.fit()
    if result.error:
        raise result.error
    return final_metrics(run_dir)


def final_metrics(run_dir: Path) -> dict:
    """Every key's latest value in the run's metrics.jsonl (the loop's final evaluation comes as its own report)."""
    merged: dict = {}
    for record in read_metrics(Path(run_dir) / "metrics.jsonl"):
        merged |= record
    return merged


def share_of_cpus(ray_cfg: RayConfig, runs: int) -> RayConfig:
    """The config for one of `runs` trainings run at the same time on this cluster (threads calling `fit`): each
    worker gets its share of the CPUs instead of all of them. GPU runs and set CPU counts are kept."""
    if runs <= 1 or ray_cfg.use_gpu or ray_cfg.cpus_per_worker or not ray_cfg.num_workers:
        return ray_cfg
    cpus = int(init_ray().cluster_resources().get("CPU", 1))
    return replace(ray_cfg, cpus_per_worker=max(1, cpus // (runs * ray_cfg.num_workers)))


def _cpus_per_worker(ray, ray_cfg: RayConfig) -> int:
    """Ray sets OMP_NUM_THREADS to a worker's CPU count, so this is also its torch thread count."""
    if ray_cfg.cpus_per_worker:
        return ray_cfg.cpus_per_worker
    per_node = max((n["Resources"].get("CPU", 0) for n in ray.nodes() if n["Alive"]), default=1)
    total = ray.cluster_resources().get("CPU", 1)
    return max(1, int(min(total // ray_cfg.num_workers, per_node)))


SMALL_DATASET_BYTES = 512 * 2**20


def _bytes(directory: str) -> int:
    return sum(p.stat().st_size for p in Path(directory).glob("*.parquet"))


def _train_dataset(ray, directory: str, small: bool):
    """The Ray Dataset the workers stream their shards of, in the object store before training starts.
    A small set is read by this driver and put in as 16 blocks: no read tasks, no reader actors (MNIST: the
    first step ~7 s sooner than with read_parquet here); a large one is read by Ray Data's parallel readers."""
    if not small:
        return ray.data.read_parquet(directory).materialize()
    table = pq.read_table(directory)
    step = -(-table.num_rows // 16)
    return ray.data.from_arrow([table.slice(start, step) for start in range(0, table.num_rows, step)])


def _count_rows(directory: str) -> int:
    return sum(pq.read_metadata(p).num_rows for p in Path(directory).glob("*.parquet"))
