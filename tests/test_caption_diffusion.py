"""The caption world's text-conditioned diffusion model: token encoder + cross-attending U-Net (issue 38)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genlab.data.captions import make_rows, tokenize
from genlab.diffusion.schedule import NoiseSchedule, ScheduleConfig
from genlab.diffusion.unet import UNetConfig
from genlab.pipeline.caption_diffusion import CaptionDiffusion, CaptionDiffusionConfig, caption_diffusion_loss
from genlab.pipeline.token_encoder import TokenEncoderConfig
from genlab.diffusion.samplers import SamplerConfig


def tiny() -> CaptionDiffusion:
    torch.manual_seed(0)
    return CaptionDiffusion(CaptionDiffusionConfig(
        unet=UNetConfig(channels=16, channel_mults=(1, 2), attention_levels=(-1,), in_channels=3, image_size=32,
                        context_dim=16),
        text=TokenEncoderConfig(width=16, layers=1, heads=2), schedule=ScheduleConfig(timesteps=100),
        sampler=SamplerConfig("dpm++2m", steps=4, guidance=3.0)))


def test_the_widths_must_agree():
    with pytest.raises(ValueError, match="context_dim"):
        CaptionDiffusionConfig(text=TokenEncoderConfig(width=64))


def test_the_loss_falls_on_caption_canvases():
    rows = make_rows("train", 64, seed=2)
    images = torch.from_numpy(np.stack([r["image"] for r in rows]))
    tokens = tokenize([r["caption"] for r in rows])
    model = tiny()
    schedule = NoiseSchedule(model.cfg.schedule)
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(40):
        loss = caption_diffusion_loss(model, schedule, images, tokens, 0.1, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5]), losses
    assert model.encoder.token.weight.grad.abs().sum() > 0  # the text encoder trains with the U-Net


def test_dropped_captions_are_the_null_sequence_and_generation_is_seeded():
    model = tiny().eval()
    tokens = tokenize(["a red seven in the top left", "left: a blue bag, right: a green 2"])
    c = model.context(tokens, torch.tensor([False, True]))
    assert c[1].abs().max() == 0 and c[0].abs().max() > 0
    for p in model.parameters():  # past the zero initialisation, so the text reaches the pixels
        p.data.normal_(0, 0.05)
    a, b = model.generate(tokens, seed=1), model.generate(tokens, seed=1)
    assert a.shape == (2, 3, 32, 32) and torch.equal(a, b) and 0 <= a.min() and a.max() <= 1
    assert not torch.equal(model.generate(tokens, seed=1, guidance=1.0), a)  # guidance reaches the sampler


def test_a_saved_model_loads_and_generates_the_same_images(tmp_path):
    from genlab.core.checkpoint import load_model, save_checkpoint
    from genlab.core.config import to_dict

    model = tiny().eval()
    for p in model.parameters():
        p.data.normal_(0, 0.05)
    save_checkpoint(tmp_path / "m", family="pipeline.caption_diffusion", config={"model": to_dict(model.cfg)},
                    model=model)
    loaded = load_model(tmp_path / "m")
    tokens = tokenize(["a small yellow bag"])
    assert isinstance(loaded, CaptionDiffusion) and loaded.cfg == model.cfg
    assert torch.equal(loaded.generate(tokens, seed=3), model.generate(tokens, seed=3))


def test_training_runs_through_the_harness_and_scores_validation_prompts_only(tmp_path):
    """A smoke-scale run in-process: checkpoints, metrics, and per-epoch judge scores on the two validation
    prompt splits (never a test split)."""
    from genlab.core.rundir import read_metrics
    from genlab.core.runtime import LocalRuntime
    from genlab.pipeline.caption_diffusion_train import CaptionDiffusionTrainConfig, smoke_config, train

    rows = make_rows("train", 64, seed=4)
    data = (torch.from_numpy(np.stack([r["image"] for r in rows])), tokenize([r["caption"] for r in rows]))
    cfg = smoke_config(CaptionDiffusionTrainConfig())
    metrics = train(cfg, LocalRuntime(tmp_path, {"train": data}))
    assert metrics["step"] == 4
    keys = [k for k in metrics if k.startswith("val/")]
    assert keys and all(k.split("/")[1] in ("val_phrasings", "val_combos") for k in keys)
    assert 0 <= metrics["val/val_phrasings/overall_absolute"] <= 1
    assert any("train/loss" in r for r in read_metrics(tmp_path / "metrics.jsonl"))


def test_the_caption_pipeline_saves_itself_when_loaded_and_draws_the_same_images(tmp_path):
    """save_pretrained works on a loaded pipeline (no source files), load_pipeline finds the right class, and the
    sampler settings saved with it are the ones it draws with."""
    from genlab.pipeline import CaptionDiffusionPipeline, PromptError, TextToImagePipeline, load_pipeline

    model = tiny()
    for p in model.parameters():
        p.data.normal_(0, 0.05)
    pipe = CaptionDiffusionPipeline(model).with_sampler(guidance=2.0, steps=3, chosen_on="a validation file")
    first = pipe(["a red seven in the top left", "a small yellow bag"], num_images=2, seed=5)
    assert first.images.shape == (4, 3, 32, 32) and first.prompts[1] == "a red seven in the top left"
    loaded = load_pipeline(pipe.save_pretrained(tmp_path / "a"))
    assert isinstance(loaded, CaptionDiffusionPipeline) and not isinstance(loaded, TextToImagePipeline)
    assert loaded.sampler.guidance == 2.0 and loaded.sampler.steps == 3 and loaded.chosen_on == "a validation file"
    again = CaptionDiffusionPipeline.from_pretrained(loaded.save_pretrained(tmp_path / "b"))  # saved from a load
    for p in (loaded, again):
        assert torch.equal(p(["a red seven in the top left", "a small yellow bag"], 2, seed=5).images, first.images)
    assert not torch.equal(pipe("a small yellow bag", 1, seed=5, guidance=0.0).images, first.images[2:3])
    for bad in [dict(prompts=""), dict(prompts="a red seven " * 20), dict(prompts="a bag", guidance=50.0),
                dict(prompts="a bag", steps=0), dict(prompts="a bag", num_images=0)]:
        with pytest.raises(PromptError):
            pipe(**bad)
    with pytest.raises(FileNotFoundError, match="pipeline.json"):
        load_pipeline(tmp_path)
