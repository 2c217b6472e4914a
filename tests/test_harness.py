"""The one harness (genlab.core.harness.fit + TrainState) in a single process: time budget + resume, per-rank RNG
bookkeeping, precision."""

import contextlib

import pytest
import torch

from genlab.autoencoders import ModelConfig, TrainConfig
from genlab.autoencoders.train import train
from genlab.core.checkpoint import find_latest_checkpoint, load_model, load_train_state
from genlab.core.rundir import read_metrics, read_timeline
from genlab.core.runtime import LocalRuntime, autocast_for
from genlab.core.train_state import TrainState


def tiny(epochs=3):
    return TrainConfig(model=ModelConfig(kind="vae", arch="mlp", hidden=(32,), latent_dim=4), epochs=epochs,
                       batch_size=32, eval_images=64, figures=False, progress=False, seed=1)


def test_time_budget_stops_after_a_checkpointed_epoch_and_resume_finishes_identically(tmp_path, tiny_mnist):
    data = {"train": tiny_mnist}
    train(tiny(), LocalRuntime(tmp_path / "straight", data, seed=1), tiny_mnist)
    stopped = train(tiny(), LocalRuntime(tmp_path / "split", data, seed=1, stop_after_s=1e-9), tiny_mnist)
    assert stopped["epoch"] == 1 and "eval/iw_nll_nats" not in stopped  # no final evaluation when stopped early
    train(tiny(), LocalRuntime(tmp_path / "split", data, seed=1), tiny_mnist)
    a = load_model(find_latest_checkpoint(tmp_path / "straight")).state_dict()
    b = load_model(find_latest_checkpoint(tmp_path / "split")).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["epoch"] for r in read_metrics(tmp_path / "split" / "metrics.jsonl") if "epoch" in r] == [1, 2, 3]
    # the timeline names the points timings use: each (re)start's first applied step, and the end of training
    first, last = read_timeline(tmp_path / "split", "first_step_end"), read_timeline(tmp_path / "split", "last_step_end")
    per_epoch = 256 // 32
    assert [r["step"] for r in first] == [1, per_epoch + 1] and [r["step"] for r in last] == [per_epoch, 3 * per_epoch]
    assert first[0]["at"] <= last[0]["at"] <= first[1]["at"] <= last[1]["at"]


def test_checkpoint_keeps_one_rng_state_per_rank(tmp_path, tiny_mnist):
    train(tiny(1), LocalRuntime(tmp_path, {"train": tiny_mnist}, seed=1), tiny_mnist)
    state = load_train_state(find_latest_checkpoint(tmp_path))
    assert isinstance(state["rng"], list) and len(state["rng"]) == 1 and "torch" in state["rng"][0]


def test_each_rank_takes_its_own_rng_state_back_and_a_new_rank_gets_a_fresh_stream():
    model = torch.nn.Linear(2, 2)
    gens = {"episodes": torch.Generator().manual_seed(0)}
    state = TrainState(model, {"opt": torch.optim.SGD(model.parameters(), lr=0.1)}, generators=gens)
    ranks = []
    for r in range(2):  # two ranks' streams as rank 0 would gather them
        torch.manual_seed(100 + r)
        gens["episodes"].manual_seed(200 + r)
        ranks.append(state.rank_state())
    saved = state.state_dict(ranks)
    draws = []
    for r in range(3):  # rank 2 did not exist when the checkpoint was written
        state.load_state_dict(saved, rank=r, seed=5)
        draws.append((torch.rand(1).item(), torch.rand(1, generator=gens["episodes"]).item()))
    torch.manual_seed(101)
    assert draws[1][0] == torch.rand(1).item()  # rank 1 continues rank 1's stream
    assert len({d for d in draws}) == 3  # and every rank's draws differ


def test_precision_auto_is_fp32_on_cpu_and_bf16_when_asked():
    conv = torch.nn.Conv2d(1, 2, 3)
    x = torch.rand(1, 1, 8, 8)
    assert isinstance(autocast_for(torch.device("cpu")), contextlib.nullcontext)
    with autocast_for(torch.device("cpu"), "bf16"):
        assert conv(x).dtype == torch.bfloat16
    with autocast_for(torch.device("cpu"), "fp32"):
        assert conv(x).dtype == torch.float32
    with pytest.raises(ValueError, match="precision"):
        autocast_for(torch.device("cpu"), "fp8")


def test_rng_untouched_leaves_every_global_stream_where_it_was():
    """Tune trials compute a metric after each checkpoint (building a model: random init); it must not advance the
    streams the checkpoint saved before it, or a resumed trial draws differently from the uninterrupted one."""
    import random

    import numpy as np
    import torch

    from genlab.core.seeding import rng_untouched, seed_everything

    seed_everything(3)
    expected = (torch.rand(2), np.random.rand(2), random.random())
    seed_everything(3)
    with rng_untouched():
        torch.nn.Linear(8, 8), np.random.rand(5), random.random()
    assert torch.equal(torch.rand(2), expected[0]) and np.array_equal(np.random.rand(2), expected[1])
    assert random.random() == expected[2]


def test_metrics_go_to_tensorboard_too_with_figures_and_a_rewind_purges_later_steps(tmp_path):
    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from genlab.core.rundir import MetricsWriter

    writer = MetricsWriter(tmp_path / "metrics.jsonl")
    writer.write({"step": 1, "train/loss": 2.0, "note": "text is not a scalar"})
    Image.new("RGB", (8, 8), (200, 0, 0)).save(tmp_path / "samples.png")
    writer.write({"step": 2, "train/loss": 1.5})
    writer.write({"step": 3, "train/loss": 1.2})
    writer.rewind(2)  # a resume from the checkpoint of step 2 redoes step 3
    writer.write({"step": 3, "train/loss": 1.1})
    board = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    board.Reload()
    assert [(e.step, round(e.value, 3)) for e in board.Scalars("train/loss")] == [(1, 2.0), (2, 1.5), (3, 1.1)]
    assert board.Tags()["images"] == ["figures/samples"] and board.Images("figures/samples")[0].step == 2
    assert "note" not in board.Tags()["scalars"]
