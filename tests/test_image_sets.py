"""Colour image sets (CIFAR-10, CelebA, image folders, the synthetic faces) through load_dataset and parquet
shards, and the DCGAN paper's 32/64 px networks."""

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.data.faces import HAIR_NAMES, make_faces
from genlab.data.images import image_shape
from genlab.data.mnist import DatasetUnavailable, load_dataset
from genlab.data.shards import ensure_shards, read_shards, shard_dir, shard_shape
from genlab.gan.models import GAN, GANConfig


def test_faces_are_seeded_balanced_and_the_splits_differ():
    x, y = make_faces(20, "train")
    assert x.shape == (20, 3, 64, 64) and x.dtype == torch.uint8
    assert torch.bincount(y, minlength=len(HAIR_NAMES)).tolist() == [4] * len(HAIR_NAMES)
    again, _ = make_faces(20, "train")
    assert torch.equal(x, again)
    test, _ = make_faces(20, "test")
    assert not torch.equal(x, test)
    assert x.float().std(0).mean() > 20  # the faces differ from each other (position, colours, features)
    small, _ = make_faces(4, "train", size=32)
    assert small.shape == (4, 3, 32, 32)


def write_png(path, rgb, size=(40, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), rgb, np.uint8)).save(path)


def test_an_image_folder_is_split_labelled_by_subfolder_and_resized(tmp_path):
    for i in range(10):
        write_png(tmp_path / "imgs" / "cats" / f"{i}.png", (200, 10, 10))
        write_png(tmp_path / "imgs" / "dogs" / "deeper" / f"{i}.jpg", (10, 10, 200), size=(30, 50))
    name = f"folder:{tmp_path / 'imgs'}@32"
    assert image_shape(name) == (3, 32, 32)
    train, test = load_dataset(name, "train"), load_dataset(name, "test")
    assert train[0].shape == (18, 3, 32, 32) and test[0].shape == (2, 3, 32, 32)
    images, labels = torch.cat([train[0], test[0]]), torch.cat([train[1], test[1]])
    assert sorted(labels.tolist()) == [0] * 10 + [1] * 10  # cats, dogs (sorted sub-folders)
    red = images[:, 0].float().mean((1, 2)) > images[:, 2].float().mean((1, 2))
    assert torch.equal(red, labels == 0)  # each image kept its colour and its folder's label
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset(f"folder:{tmp_path / 'nope'}", "train")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.png").write_bytes(b"not a png")
    write_png(tmp_path / "bad" / "b.png", (1, 2, 3))
    # seed 0 puts a.png in the test split: training reads b.png alone, the test split names the bad file
    assert load_dataset(f"folder:{tmp_path / 'bad'}", "train")[0].shape[0] == 1
    with pytest.raises(ValueError, match="a.png: not a readable image"):
        load_dataset(f"folder:{tmp_path / 'bad'}", "test")


def test_colour_shards_keep_their_shape(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLAB_DATA_DIR", str(tmp_path / "cache"))
    for i in range(6):
        write_png(tmp_path / "imgs" / f"{i}.png", (30 * i, 100, 50))
    name = f"folder:{tmp_path / 'imgs'}@16"
    out = ensure_shards(name, "train")
    assert out == shard_dir(name, "train") and ":" not in out.parent.name  # a path-free directory name
    assert shard_shape(out) == (3, 16, 16)
    images, labels = read_shards(out)
    assert torch.equal(images, load_dataset(name, "train")[0]) and labels.tolist() == [0] * 5


def no_network(*args, **kwargs):
    raise OSError("network unreachable (test)")


@pytest.mark.parametrize("name,patch,hint", [
    ("cifar10", "torchvision.datasets.cifar.download_and_extract_archive", "torchvision.datasets.CIFAR10("),
    ("celeba", "torchvision.datasets.celeba.download_file_from_google_drive", "img_align_celeba.zip"),
])
def test_cifar_and_celeba_offline_fail_with_the_command_that_gets_them(tmp_path, monkeypatch, name, patch, hint):
    monkeypatch.setattr(patch, no_network)  # torchvision goes as far as its download, which fails here
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset(name, "train", root=tmp_path)
    message = str(err.value)
    assert hint in message and str(tmp_path) in message and "network unreachable (test)" in message
    if name == "celeba":
        assert "--train.dataset faces" in message


@pytest.mark.parametrize("size", [32, 64])
def test_dcgan_paper_networks_draw_and_judge_colour_images(size):
    cfg = GANConfig(arch="dcgan", image_size=size, image_channels=3, d_in_channels=3)
    gan = GAN(cfg)
    x = gan.generator(torch.randn(5, cfg.latent_dim))
    assert x.shape == (5, 3, size, size) and x.abs().max() <= 1
    assert gan.discriminator(x).shape == (5,)
    if size == 64:  # the sizes of PyTorch's DCGAN example (ngf = ndf = 64, nz = 100)
        assert sum(p.numel() for p in gan.generator.parameters()) == 3_576_704
        assert sum(p.numel() for p in gan.discriminator.parameters()) == 2_765_568
    first = gan.discriminator.body[0].weight
    assert abs(first.std().item() - 0.02) < 0.003 and abs(first.mean().item()) < 0.002  # N(0, 0.02) init
    cond = GAN(GANConfig(arch="dcgan", image_size=size, image_channels=3, d_in_channels=3, num_classes=5))
    y = torch.arange(5)
    assert cond.discriminator(cond.generator(torch.randn(5, 100), y), y).shape == (5,)
    with pytest.raises(ValueError, match="32, 64 or 128"):
        GANConfig(arch="dcgan", image_size=28)
