import json

import pytest
import torch

from genlab.autoencoders import ModelConfig, TrainConfig
from genlab.autoencoders.train import train
from genlab.core.checkpoint import find_latest_checkpoint, load_model, load_train_state, save_checkpoint
from genlab.core.config import to_dict
from genlab.core.rundir import read_metrics
from genlab.core.runtime import LocalRuntime
from tests.resume_helpers import Crash, CrashAfterFirstCheckpoint


def tiny(kind="vae", epochs=2, **kw):
    return TrainConfig(model=ModelConfig(kind=kind, arch="mlp", hidden=(32,), latent_dim=4), epochs=epochs,
                       batch_size=32, eval_images=64, figures=False, progress=False, **kw)


def test_checkpoint_round_trip(tmp_path):
    cfg = tiny()
    from genlab.autoencoders import build_model

    model = build_model(cfg.model)
    path = save_checkpoint(tmp_path / "ckpt", family="autoencoders", config=to_dict(cfg), model=model,
                           train_state={"step": 7, "rng": torch.get_rng_state()})
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors", "train_state.pt"]
    assert json.loads((path / "config.json").read_text())["family"] == "autoencoders"
    loaded = load_model(path)
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(loaded.decode(loaded.encode(x)[0]), model.eval().decode(model.encode(x)[0]))
    assert load_train_state(path)["step"] == 7
    # overwrite is atomic: no temp or .old directories left behind
    save_checkpoint(path, family="autoencoders", config=to_dict(cfg), model=model)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


def test_load_model_rejects_non_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a genlab checkpoint"):
        load_model(tmp_path)


@pytest.mark.parametrize("kind,objective", [("vae", "classic"), ("ae", "denoising")])
def test_resume_equals_uninterrupted_run(tmp_path, tiny_mnist, kind, objective):
    data = {"train": tiny_mnist}
    straight = LocalRuntime(tmp_path / "straight", data, seed=3)
    train(tiny(kind, epochs=2, objective=objective, seed=3), straight, tiny_mnist)

    first = CrashAfterFirstCheckpoint(tmp_path / "interrupted", data, seed=3)
    with pytest.raises(Crash):
        train(tiny(kind, epochs=2, objective=objective, seed=3), first, tiny_mnist)
    # a new process would start here: same run dir and config, resumes from the latest checkpoint
    torch.manual_seed(12345)  # whatever the global RNG holds now must not matter
    resumed = LocalRuntime(tmp_path / "interrupted", data, seed=3)
    train(tiny(kind, epochs=2, objective=objective, seed=3), resumed, tiny_mnist)

    a = load_model(find_latest_checkpoint(tmp_path / "straight"))
    b = load_model(find_latest_checkpoint(tmp_path / "interrupted"))
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(pa, pb), name
    last = [r for r in read_metrics(tmp_path / "interrupted" / "metrics.jsonl") if "epoch" in r][-1]
    assert last["epoch"] == 2 and last["step"] == 2 * (256 // 32)


class CrashMidSecondEpoch(LocalRuntime):
    """Dies at the first windowed report of epoch 2: after the epoch-1 checkpoint, before the next one."""

    def report(self, metrics, checkpoint=None):
        super().report(metrics, checkpoint)
        if metrics["step"] > 4 and "epoch" not in metrics:
            raise Crash("simulated failure mid-epoch")


def test_a_resumed_run_reports_each_step_once(tmp_path, tiny_mnist):
    """Reports made after the last checkpoint are redone by the resumed run: its metrics.jsonl must hold each
    step once (the harness rewinds it to the checkpoint's step), equal to an uninterrupted run's."""
    from genlab.gan import GANConfig, GANTrainConfig
    from genlab.gan.train import train as train_gan

    data = {"train": tiny_mnist}
    cfg = GANTrainConfig(model=GANConfig(g_channels=(16, 8), d_channels=(8, 16)), epochs=2, batch_size=32,
                         max_steps_per_epoch=4, log_every=2, fld_samples=0, figures=False, progress=False, seed=1)
    train_gan(cfg, LocalRuntime(tmp_path / "straight", data, seed=1), tiny_mnist)
    with pytest.raises(Crash):
        train_gan(cfg, CrashMidSecondEpoch(tmp_path / "crashed", data, seed=1), tiny_mnist)
    assert [r["step"] for r in read_metrics(tmp_path / "crashed" / "metrics.jsonl")][-1] == 6  # past the checkpoint
    train_gan(cfg, LocalRuntime(tmp_path / "crashed", data, seed=1), tiny_mnist)
    straight, resumed = (read_metrics(tmp_path / run / "metrics.jsonl") for run in ("straight", "crashed"))
    assert [r["step"] for r in resumed] == [r["step"] for r in straight] == [2, 4, 4, 6, 8, 8]
    drop = lambda r: {k: v for k, v in r.items() if not k.startswith("perf/")}  # noqa: E731
    for a, b in zip(resumed, straight):
        assert drop(a) == pytest.approx(drop(b))


def test_training_reduces_loss_and_writes_figures(tmp_path, tiny_mnist):
    cfg = tiny("vae", epochs=3, iw_k=5, iw_images=32)
    cfg.figures = True
    rt = LocalRuntime(tmp_path, {"train": tiny_mnist}, seed=0)
    metrics = train(cfg, rt, tiny_mnist)
    records = [r for r in read_metrics(tmp_path / "metrics.jsonl") if "train/loss" in r]
    assert records[-1]["train/loss"] < records[0]["train/loss"]
    assert {"eval/iw_nll_nats", "eval/neg_elbo_nats"} <= set(metrics)
    names = {p.name for p in tmp_path.glob("*.png")}
    assert {"reconstructions.png", "latent_map.png", "prior_samples.png", "interpolation.png", "curves.png"} <= names
    assert len(list((tmp_path / "checkpoints").iterdir())) == 2  # keeps the newest two


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_colour_vae_trains_on_intensities_and_resumes_exactly(tmp_path, arch):
    """A colour set (the faces at 32x32) sets the nets' size and channels and turns binarisation off; a crashed
    run resumes to the uninterrupted one's weights; samples and reconstructions are colour images."""
    from genlab.autoencoders.train import reconstruct_fn
    from genlab.data.faces import make_faces

    faces = make_faces(96, "train", size=32)
    cfg = TrainConfig(model=ModelConfig(kind="vae", arch=arch, hidden=(32,), channels=(8, 16), conv_fc=32,
                                        latent_dim=4), dataset="faces@32", epochs=2, batch_size=32, eval_images=32,
                      iw_k=3, iw_images=16, figures=False, progress=False, seed=2)
    assert cfg.model.image_shape == (3, 32, 32) and not cfg.binarize
    assert cfg.run_name() == f"vae-{arch}-faces32-beta1"
    data = {"train": faces}
    metrics = train(cfg, LocalRuntime(tmp_path / "straight", data, seed=2), faces)
    assert metrics["eval/psnr_db"] > 0 and metrics["eval/iw_nll_nats"] > 0
    with pytest.raises(Crash):
        train(cfg, CrashAfterFirstCheckpoint(tmp_path / "resumed", data, seed=2), faces)
    train(cfg, LocalRuntime(tmp_path / "resumed", data, seed=2), faces)
    a, b = (load_model(find_latest_checkpoint(tmp_path / run)) for run in ("straight", "resumed"))
    assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())
    assert b.sample(2).shape == (2, 3, 32, 32)
    assert reconstruct_fn(b)(faces[0][:2].float() / 255).shape == (2, 3, 32, 32)
