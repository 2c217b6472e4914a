import os

# no internet here: nothing may try a model hub (genlab itself leaves this to the user)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

from genlab.distributed.env import configure_ray_env

configure_ray_env()
# Ray 2.60's driver can segfault in its OpenTelemetry metrics thread when Ray is started a second time in one
# process (seen in this suite: SIGSEGV in TemporalMetricStorage::buildMetrics after the second ray.init). The tests
# start Ray several times in the pytest process and read no Ray metrics: collection off.
os.environ.setdefault("RAY_enable_metrics_collection", "0")
torch.set_num_threads(2)


@pytest.fixture
def tiny_mnist():
    """A synthetic 28x28 'dataset' (blobs per class) that needs no files: (images uint8, labels)."""
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(256) % 10
    yy, xx = torch.meshgrid(torch.arange(28), torch.arange(28), indexing="ij")
    cy, cx = 6 + 2 * (labels // 5 * 4), 4 + 4 * (labels % 5)
    blob = ((yy[None] - cy[:, None, None]) ** 2 + (xx[None] - cx[:, None, None]) ** 2) < 20
    noise = torch.rand(256, 28, 28, generator=gen) * 0.2
    images = ((blob.float() * 0.8 + noise).clamp(0, 1) * 255).to(torch.uint8)
    return images, labels


@pytest.fixture
def run_root(tmp_path):
    return tmp_path / "runs"


def pytest_collection_modifyitems(config, items):
    if os.environ.get("GENLAB_SKIP_RAY"):
        for item in items:
            if "ray" in item.keywords:
                item.add_marker(pytest.mark.skip(reason="GENLAB_SKIP_RAY is set"))
