"""Training of the caption world's text-conditioned diffusion model (`CaptionDiffusion`) on the caption set's
train split, through the one harness (resumable, progress, metrics). Each epoch the EMA model is scored by the
compositional judge on validation prompts (`val_phrasings`, `val_combos`): the numbers epochs and guidance are
chosen on. The test prompts are never touched here."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch.nn.utils import clip_grad_norm_

from genlab.core import loop
from genlab.core.harness import fit
from genlab.core.runtime import Runtime
from genlab.core.seeding import seed_everything
from genlab.core.train_state import TrainState
from genlab.diffusion.schedule import NoiseSchedule
from genlab.pipeline.caption_diffusion import CaptionDiffusion, CaptionDiffusionConfig, caption_diffusion_loss

FAMILY = "pipeline.caption_diffusion"


@dataclass
class CaptionDiffusionTrainConfig:
    model: CaptionDiffusionConfig = field(default_factory=CaptionDiffusionConfig)
    dataset: str = "captions"
    """Caption set: 'captions' (100k canvases) or 'captions_small' (4k, tests)."""
    epochs: int = 3
    """3 x 1,562 steps of 64: about 1.1 hours here in fp32 (an epoch ends with the validation scoring)."""
    batch_size: int = 64
    lr: float = 2e-4
    warmup_steps: int = 500
    max_steps_per_epoch: int = 0
    """0 = whole epochs; > 0 caps the steps of each epoch (smoke runs)."""
    ema_decay: float = 0.999
    caption_dropout: float = 0.1
    """Probability that a caption is replaced by the null sequence (what classifier-free guidance needs)."""
    grad_clip: float = 1.0
    val_prompts: int = 200
    """Prompts of each validation split the judge scores after every epoch (0 = no per-epoch scoring)."""
    judge_quick: bool = False
    """Use the quick judge (2,000 canvases, 1 epoch): smoke runs only."""
    seed: int = 0
    progress: bool = True

    def run_name(self) -> str:
        return "caption-diffusion"


def smoke_config(cfg: CaptionDiffusionTrainConfig) -> CaptionDiffusionTrainConfig:
    from genlab.diffusion.samplers import SamplerConfig
    from genlab.diffusion.unet import UNetConfig
    from genlab.pipeline.token_encoder import TokenEncoderConfig

    model = CaptionDiffusionConfig(
        unet=UNetConfig(channels=16, channel_mults=(1, 2), attention_levels=(-1,), in_channels=3, image_size=32,
                        context_dim=16),
        text=TokenEncoderConfig(width=16, layers=1, heads=2), sampler=SamplerConfig("dpm++2m", steps=4,
                                                                                   guidance=3.0))
    return dataclasses.replace(cfg, model=model, dataset="captions_small", epochs=1, max_steps_per_epoch=4,
                               batch_size=16, warmup_steps=2, val_prompts=20, judge_quick=True, progress=False)


def train(cfg: CaptionDiffusionTrainConfig, rt: Runtime, test=None) -> dict:
    """`rt`'s "train" batches are (uint8 canvases (B, 3, 32, 32), tokens (B, L)); `test` is unused: every
    choice is made on the validation prompts."""
    seed_everything(cfg.seed + 1000 * rt.rank)
    schedule = NoiseSchedule(cfg.model.schedule)
    model = CaptionDiffusion(cfg.model)
    ema = loop.make_ema(model, cfg.ema_decay)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    steps_per_epoch = loop.steps_per_epoch(rt.num_examples("train"), cfg.batch_size, cfg.max_steps_per_epoch)
    sched = loop.warmup_cosine(opt, steps_per_epoch * cfg.epochs, cfg.warmup_steps)
    state = TrainState(model, {"optimizer": opt}, {"scheduler": sched}, ema=ema)

    def step(batch) -> dict:
        images, tokens = batch
        # ALGO LOGIC: noise the canvases, regress the noise given the caption's tokens (dropped 10% of the time)
        with rt.autocast():
            loss = caption_diffusion_loss(state.module(), schedule, images, tokens, cfg.caption_dropout)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = clip_grad_norm_(model.parameters(), cfg.grad_clip or float("inf"))
        opt.step()
        sched.step()
        ema.update_parameters(model)
        return {"loss": loss.detach(), "grad_norm": gnorm}

    def eval_fn() -> dict:
        if not cfg.val_prompts:
            return {}
        from genlab.eval.judge_reference import reference_judge
        from genlab.pipeline.caption_evaluate import score_generator

        judge, _ = reference_judge(quick=cfg.judge_quick)
        net = ema.module
        out = {}
        for split in ("val_phrasings", "val_combos"):
            r = score_generator(lambda tokens, seed: net.generate(tokens.to(rt.device), seed=seed), judge, split,
                                cfg.val_prompts)
            out |= {f"val/{split}/{k}": v for k, v in r["relative"].items()}
            out[f"val/{split}/overall_absolute"] = r["absolute"]["overall"]
            out[f"val/{split}/realism_fd"] = r["realism_fd"]
        return out

    return fit(rt, state, step, family=FAMILY, config=cfg, total_steps=steps_per_epoch * cfg.epochs,
               steps_per_epoch=steps_per_epoch, batch_size=cfg.batch_size, eval_fn=eval_fn,
               progress=cfg.progress, desc=cfg.run_name())
