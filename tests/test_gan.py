"""DCGAN: shapes, the seed's losses against hand formulas, conditioning, stabilisers, resume with EMA."""

import math

import pytest
import torch

from genlab.core.checkpoint import find_latest_checkpoint, load_model, load_train_state
from genlab.core.rundir import read_metrics
from genlab.core.runtime import LocalRuntime
from tests.resume_helpers import Crash, CrashAfterFirstCheckpoint
from genlab.gan import GAN, Discriminator, GANConfig, GANTrainConfig, Generator
from genlab.gan.losses import discriminator_loss, generator_loss
from genlab.gan.train import train


def test_generator_and_discriminator_shapes():
    g, d = Generator(), Discriminator()
    x = g(torch.randn(5, 100))
    assert x.shape == (5, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    assert d(x).shape == (5,)
    assert isinstance(g.fc, torch.nn.Linear) and g.fc.out_features == 128 * 7 * 7  # the seed's 128x7x7 start
    assert sum(isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2) for m in d.modules()) == 4


def test_conditional_networks_need_labels():
    cfg = GANConfig(num_classes=10)
    g, d = Generator(cfg), Discriminator(cfg)
    y = torch.tensor([0, 9])
    x = g(torch.randn(2, 100), y)
    assert d(x, y).shape == (2,)
    with pytest.raises(ValueError, match="class-conditional"):
        g(torch.randn(2, 100))
    with pytest.raises(ValueError, match="class-conditional"):
        d(x)
    d.eval()  # projection: the same image scores differently under different labels
    assert not torch.allclose(d(x, torch.tensor([0, 0])), d(x, torch.tensor([5, 5])))


def test_spectral_norm_replaces_batchnorm_in_d():
    d = Discriminator(GANConfig(spectral_norm=True))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules())
    conv = next(m for m in d.modules() if isinstance(m, torch.nn.Conv2d))
    assert hasattr(conv, "parametrizations")
    d.train()
    for _ in range(20):  # power iteration converges: the weight's top singular value becomes ~1
        d(torch.randn(4, 1, 28, 28))
    w = conv.weight.reshape(conv.weight.shape[0], -1)
    assert torch.linalg.matrix_norm(w, ord=2).item() == pytest.approx(1.0, abs=0.05)


def test_losses_match_the_bce_formulas():
    real, fake = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([-3.0, 0.0, 1.0])
    sig = torch.sigmoid
    expected_d = (-(sig(real).log()).mean() - ((1 - sig(fake)).log()).mean()) / 2
    torch.testing.assert_close(discriminator_loss(real, fake), expected_d)
    torch.testing.assert_close(generator_loss(fake), -(sig(fake).log()).mean())
    smoothed = (-(0.9 * sig(real).log() + 0.1 * (1 - sig(real)).log()).mean() - ((1 - sig(fake)).log()).mean()) / 2
    torch.testing.assert_close(discriminator_loss(real, fake, label_smoothing=0.1), smoothed)
    # a confused D (logits 0) scores ln 2 on both terms, the GAN game's equilibrium value
    assert discriminator_loss(torch.zeros(4), torch.zeros(4)).item() == pytest.approx(math.log(2))


def test_generate_is_seeded_and_in_unit_range():
    gan = GAN(GANConfig(g_channels=(16, 8)))
    a, b = gan.generate(6, seed=1), gan.generate(6, seed=1)
    assert torch.equal(a, b) and a.shape == (6, 1, 28, 28) and 0 <= a.min() and a.max() <= 1


def tiny_cfg(**kw):
    return GANTrainConfig(model=GANConfig(g_channels=(16, 8), d_channels=(8, 16), num_classes=10), epochs=2,
                          batch_size=32, ema_decay=0.9, log_every=3, fld_samples=0, figures=False, progress=False,
                          **kw)


def test_gan_resume_with_ema_equals_uninterrupted_run(tmp_path, tiny_mnist):
    data = {"train": tiny_mnist}
    train(tiny_cfg(seed=2), LocalRuntime(tmp_path / "straight", data, seed=2), tiny_mnist)
    with pytest.raises(Crash):
        train(tiny_cfg(seed=2), CrashAfterFirstCheckpoint(tmp_path / "resumed", data, seed=2), tiny_mnist)
    torch.manual_seed(999)
    train(tiny_cfg(seed=2), LocalRuntime(tmp_path / "resumed", data, seed=2), tiny_mnist)
    a, b = find_latest_checkpoint(tmp_path / "straight"), find_latest_checkpoint(tmp_path / "resumed")
    for ema in (False, True):
        sa, sb = load_model(a, ema=ema).state_dict(), load_model(b, ema=ema).state_dict()
        assert sa.keys() == sb.keys()
        for name in sa:
            assert torch.equal(sa[name], sb[name]), (ema, name)
    assert load_train_state(b)["ema_n_averaged"] == 16
    assert isinstance(load_model(b, ema=True), GAN)


def test_training_writes_diagnostics_and_epoch_grids(tmp_path, tiny_mnist):
    cfg = tiny_cfg(seed=0)
    cfg.figures = True
    train(cfg, LocalRuntime(tmp_path, {"train": tiny_mnist}, seed=0), tiny_mnist)
    records = [r for r in read_metrics(tmp_path / "metrics.jsonl") if "train/loss_d" in r]
    assert len(records) == 2 * 8 // 3
    for key in ("loss_d", "loss_g", "d_real", "d_fake", "grad_norm_d", "grad_norm_g"):
        assert all(math.isfinite(r[f"train/{key}"]) for r in records), key
    assert all(0 < r["train/d_real"] < 1 and 0 < r["train/d_fake"] < 1 for r in records)
    assert {"samples.png", "diagnostics.png"} <= {p.name for p in tmp_path.glob("*.png")}
    assert len(list((tmp_path / "epochs").glob("samples_epoch*.png"))) == 2


def test_config_validation():
    with pytest.raises(ValueError, match="label_smoothing"):
        GANTrainConfig(label_smoothing=0.7)
    with pytest.raises(ValueError, match="ema_decay"):
        GANTrainConfig(ema_decay=1.0)
    with pytest.raises(ValueError, match="image_size"):
        GANConfig(image_size=30)


def test_ema_copies_batchnorm_statistics_for_the_dcgan_paper_nets():
    """The DCGAN init leaves BatchNorm's input variance ~0.02^2-scale: an EMA that averages the running
    variance from its initial 1 normalises by far too much for thousands of steps (grey samples, seen); the
    'copy' EMA takes the live statistics, the seed's 'average' EMA keeps averaging them."""
    from genlab.core import loop
    from genlab.gan.models import Generator

    g = Generator(GANConfig(arch="dcgan", image_size=32, image_channels=3))
    copy, average = loop.make_ema(g, 0.999, "copy"), loop.make_ema(g, 0.999, "average")
    for _ in range(3):  # (an AveragedModel's first update copies everything)
        g.train()(torch.randn(16, 100))  # a batch updates the live running statistics
        for ema in (copy, average):
            loop.update_ema(ema, g)
    live = dict(g.named_buffers())
    assert all(torch.equal(b, live[n]) for n, b in copy.module.named_buffers())
    assert not torch.equal(dict(average.module.named_buffers())["body.1.running_var"], live["body.1.running_var"])
