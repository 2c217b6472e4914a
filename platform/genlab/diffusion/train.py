"""The DDPM training loop (eps-prediction MSE, Ho et al. 2020), run by any Runtime (local or Ray Train)."""

from __future__ import annotations

import logging
from typing import Callable

import torch
import torch.nn.functional as F
from torch.nn.utils import clip_grad_norm_

from genlab.core import loop
from genlab.core.harness import fit
from genlab.core.runtime import Runtime
from genlab.core.seeding import seed_everything
from genlab.core.train_state import TrainState
from genlab.eval.reconstruction import to_signed
from genlab.diffusion.config import DiffusionConfig
from genlab.diffusion.schedule import NoiseSchedule
from genlab.diffusion.unet import UNet

log = logging.getLogger(__name__)
FAMILY = "diffusion"
EVAL_SEED = 4321


def diffusion_loss(model, schedule: NoiseSchedule, x0: torch.Tensor, labels: torch.Tensor | None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """E_t,eps || eps - eps_theta(sqrt(ab_t) x0 + sqrt(1 - ab_t) eps, t) ||^2 with t ~ U{0..T-1}."""
    if generator is None:  # draw on the device (fast on GPU); a CPU generator makes evaluation reproducible
        t = torch.randint(0, schedule.T, (len(x0),), device=x0.device)
        noise = torch.randn_like(x0)
    else:
        t = torch.randint(0, schedule.T, (len(x0),), generator=generator).to(x0.device)
        noise = torch.randn(x0.shape, generator=generator).to(x0.device)
    return F.mse_loss(model(schedule.q_sample(x0, t, noise), t, labels), noise)


def drop_labels(labels: torch.Tensor, p: float, null: torch.Tensor | int) -> torch.Tensor:
    """Replace a random fraction p of labels (or of condition vectors' rows) by the null class (vector): what
    classifier-free guidance trains on."""
    if p <= 0:
        return labels
    keep = torch.rand(len(labels), device=labels.device) >= p
    null = torch.full_like(labels, null) if isinstance(null, int) else null
    return torch.where(keep.view(-1, *[1] * (labels.dim() - 1)), labels, null)


Condition = Callable[[torch.Tensor, "torch.Generator | None"], torch.Tensor]


def train(cfg: DiffusionConfig, rt: Runtime, test: tuple[torch.Tensor, torch.Tensor] | None = None,
          condition: Condition | None = None) -> dict:
    """Train `cfg` on `rt`'s "train" batches; rank 0 evaluates with the EMA weights each epoch. A U-Net with
    `cond_dim` needs `condition(labels, generator)`: the (B, cond_dim) vectors of a batch (e.g. CLIP embeddings
    of captions of each image's class; the text-to-image pipeline's generator)."""
    if bool(cfg.unet.cond_dim) != (condition is not None):
        raise ValueError("a U-Net with cond_dim > 0 trains with a `condition` function, and only such a U-Net")
    seed_everything(cfg.seed + 1000 * rt.rank)
    schedule = NoiseSchedule(cfg.schedule)
    model = UNet(cfg.unet)
    ema = loop.make_ema(model, cfg.ema_decay)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    steps_per_epoch = loop.steps_per_epoch(rt.num_examples("train"), cfg.batch_size, cfg.max_steps_per_epoch)
    sched = loop.warmup_cosine(opt, steps_per_epoch * cfg.epochs, cfg.warmup_steps)
    state = TrainState(model, {"optimizer": opt}, {"scheduler": sched}, ema=ema)

    def step(batch) -> dict:
        images, labels = batch
        # ALGO LOGIC: one DDPM step: random t, noise the batch, regress the noise
        x0 = to_signed(images)
        y = None
        if condition is not None:
            y = condition(labels, None)
            y = drop_labels(y, cfg.label_dropout, torch.zeros_like(y))
        elif cfg.conditional:
            y = drop_labels(labels, cfg.label_dropout, cfg.unet.num_classes)
        with rt.autocast():
            loss = diffusion_loss(state.module(), schedule, x0, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = clip_grad_norm_(model.parameters(), cfg.grad_clip or float("inf"))  # inf: the norm, no clip
        opt.step()
        sched.step()
        ema.update_parameters(model)
        return {"loss": loss.detach(), "grad_norm": gnorm}

    def eval_fn() -> dict:
        if test is None:
            return {}
        out = {"eval/loss_ema": held_out_loss(ema.module, schedule, test, cfg, rt.device, condition)}
        if cfg.figures and cfg.grid_steps:
            from genlab.diffusion.figures import epoch_grid

            epoch_grid(ema.module, schedule, cfg, rt.run_dir, state.epoch, rt.device)
        return out

    return fit(rt, state, step, family=FAMILY, config=cfg, total_steps=steps_per_epoch * cfg.epochs,
               steps_per_epoch=steps_per_epoch, batch_size=cfg.batch_size, eval_fn=eval_fn,
               final_fn=(lambda: final_evaluation(cfg, ema.module, schedule, test, rt)) if test is not None else None,
               progress=cfg.progress, desc=cfg.run_name())


@torch.no_grad()
def held_out_loss(model, schedule: NoiseSchedule, test, cfg: DiffusionConfig, device,
                  condition: Condition | None = None) -> float:
    """The training objective on test images with fixed t, noise (and conditions), so epochs compare exactly."""
    model.eval()
    gen = torch.Generator().manual_seed(EVAL_SEED)
    images, labels = test[0][:cfg.eval_images], test[1][:cfg.eval_images]
    total = 0.0
    for s in range(0, len(images), 500):
        x0 = to_signed(images[s:s + 500]).to(device)
        y = labels[s:s + 500].to(device) if cfg.conditional or condition is not None else None
        y = condition(y, gen) if condition is not None else y
        total += float(diffusion_loss(model, schedule, x0, y, generator=gen)) * len(x0)
    return total / len(images)


def final_evaluation(cfg: DiffusionConfig, model, schedule: NoiseSchedule, test, rt: Runtime) -> dict:
    """FLD of `fld_samples` unconditional samples (and, for conditional models, class agreement), figures."""
    from genlab.diffusion.evaluate import evaluate_samples

    out = {}
    if cfg.fld_samples:
        res = evaluate_samples(model, schedule, cfg.sampler, cfg.fld_samples, dataset=cfg.dataset,
                               quick=cfg.fld_quick, device=rt.device, seed=cfg.seed, progress=cfg.progress,
                               inception=cfg.inception_fid)
        out |= {f"eval/{k}": v for k, v in res.items()}
    if cfg.figures:
        from genlab.diffusion.figures import write_figures

        write_figures(cfg, model, schedule, test, rt.run_dir, rt.device)
    return out
