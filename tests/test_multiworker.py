"""Data parallel training is right on 2 Ray Train workers: every rank holds rank 0's weights at every epoch end,
every rank keeps its own random stream (also after a resume), and a run stopped and resumed ends bit-identical
to an uninterrupted one. Meta-learning is the family under test because it syncs by hand (no DDP wrap):
without the harness's broadcast its replicas start apart, without the per-rank RNG restore they draw the same
tasks after a resume."""

import dataclasses

import pytest
import torch

from genlab.core.checkpoint import find_latest_checkpoint, load_model
from genlab.core.rundir import make_run_dir, read_metrics
from genlab.distributed.trainer import RayConfig, fit
from genlab.meta import MetaConfig
from genlab.meta.config import smoke_config

pytestmark = pytest.mark.ray
LOOP = "genlab.meta.train:train"


@pytest.fixture
def local_ray():
    from genlab.distributed.env import init_ray

    ray = init_ray(num_cpus=2, object_store_memory=256 * 2**20)
    yield ray
    ray.shutdown()


def epoch_records(run_dir):
    return [r for r in read_metrics(run_dir / "metrics.jsonl") if "epoch" in r]


def test_two_workers_stay_in_sync_and_resume_bit_identically(local_ray, tmp_path):
    cfg = dataclasses.replace(smoke_config(MetaConfig(algo="protonet", tasks_per_batch=2)), test_tasks=())
    two = RayConfig(num_workers=2, data_backend="local")

    straight = make_run_dir("straight", 0, root=tmp_path)
    fit(LOOP, cfg, straight, two, None)

    resumed = make_run_dir("resumed", 0, root=tmp_path)
    stopped = fit(LOOP, cfg, resumed, dataclasses.replace(two, stop_after_s=1e-9), None)  # ends after epoch 1
    assert stopped["step"] == cfg.eval_every
    fit(LOOP, cfg, resumed, two, None)  # same run name and storage: Ray Train hands back the checkpoint

    for run in (straight, resumed):
        records = epoch_records(run)
        assert [r["step"] for r in records] == [3, 6]
        # a checksum of every parameter and buffer, gathered from each rank, is one value at every epoch end
        assert all(r["dist/replicas_in_sync"] == 1.0 for r in records), records
        # and the two ranks draw from two different random streams, before and after the resume
        assert all(r["dist/rng_streams"] == 2 for r in records), records
    a = load_model(find_latest_checkpoint(straight)).state_dict()
    b = load_model(find_latest_checkpoint(resumed)).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "the resumed 2-worker run is not bit-identical"
