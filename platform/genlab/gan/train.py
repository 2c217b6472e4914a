"""The DCGAN training loop (alternating D and G Adam steps, BCE), run by any Runtime (local or Ray Train)."""

from __future__ import annotations

import logging

import torch
from torch.nn.utils import clip_grad_norm_

from genlab.core import loop
from genlab.core.harness import fit
from genlab.core.runtime import Runtime
from genlab.core.seeding import seed_everything
from genlab.core.train_state import TrainState
from genlab.eval.reconstruction import to_signed
from genlab.gan.config import GANTrainConfig
from genlab.gan.losses import discriminator_loss, generator_loss
from genlab.gan.models import GAN

log = logging.getLogger(__name__)
FAMILY = "gan"
GRID_SEED = 777
DIAGNOSTICS = ("loss_d", "loss_g", "d_real", "d_fake", "grad_norm_d", "grad_norm_g")


def train(cfg: GANTrainConfig, rt: Runtime, test: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict:
    """Train `cfg` on `rt`'s "train" batches; rank 0 writes diagnostics every log_every steps."""
    seed_everything(cfg.seed + 1000 * rt.rank)
    gan = GAN(cfg.model)
    # the DCGAN paper's N(0, 0.02) init starts BatchNorm's statistics far from their trained values: the EMA
    # generator copies them (the seed's nets keep the averaged statistics their measured numbers used)
    buffers = "copy" if cfg.model.arch == "dcgan" else "average"
    ema = loop.make_ema(gan.generator, cfg.ema_decay, buffers) if cfg.ema_decay else None
    opt_g = torch.optim.Adam(gan.generator.parameters(), lr=cfg.lr_g, betas=cfg.betas)
    opt_d = torch.optim.Adam(gan.discriminator.parameters(), lr=cfg.lr_d, betas=cfg.betas)
    steps_per_epoch = loop.steps_per_epoch(rt.num_examples("train"), cfg.batch_size, cfg.max_steps_per_epoch)
    state = TrainState(gan, {"opt_g": opt_g, "opt_d": opt_d}, ema=ema, ema_of="generator",
                       ddp=("generator", "discriminator"))
    fixed = fixed_inputs(cfg, rt.device)

    def step(batch) -> dict:
        images, labels = batch
        G, D = state.module("generator"), state.module("discriminator")
        x = to_signed(images)
        y = labels if cfg.model.num_classes else None
        # ALGO LOGIC: one D step on real + detached fake, then one G step through the updated D
        with rt.autocast():
            fake = G(torch.randn(len(x), cfg.model.latent_dim, device=x.device), y)
            real_logits, fake_logits = D(x, y), D(fake.detach(), y)
            loss_d = discriminator_loss(real_logits, fake_logits, cfg.label_smoothing)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        gn_d = clip_grad_norm_(D.parameters(), float("inf"))  # the norm only, no clipping
        opt_d.step()
        with rt.autocast():
            loss_g = generator_loss(D(fake, y))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        gn_g = clip_grad_norm_(G.parameters(), float("inf"))
        opt_g.step()
        if ema is not None:
            loop.update_ema(ema, gan.generator)
        return dict(zip(DIAGNOSTICS, (loss_d.detach(), loss_g.detach(), torch.sigmoid(real_logits.detach()).mean(),
                                      torch.sigmoid(fake_logits.detach()).mean(), gn_d, gn_g)))

    def sampler() -> GAN:
        """The GAN whose generator sampling uses: the EMA one when the run keeps it."""
        return GAN(cfg.model, ema.module, gan.discriminator) if ema is not None else gan

    def eval_fn() -> dict:
        if cfg.figures:
            from genlab.gan.figures import epoch_grid

            epoch_grid(sampler().generator, fixed, rt.run_dir, state.epoch)
        return {}

    return fit(rt, state, step, family=FAMILY, config=cfg, total_steps=steps_per_epoch * cfg.epochs,
               steps_per_epoch=steps_per_epoch, batch_size=cfg.batch_size, eval_fn=eval_fn,
               final_fn=(lambda: final_evaluation(cfg, sampler(), rt)) if test is not None else None,
               log_every=cfg.log_every, progress=cfg.progress, desc=cfg.run_name())


def fixed_inputs(cfg: GANTrainConfig, device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The same 80 noise vectors (and, conditional, 8 per class for up to 10 classes) every epoch, so grids show
    progress."""
    k = min(cfg.model.num_classes, 10)
    z = torch.randn(8 * k if k else 80, cfg.model.latent_dim,
                    generator=torch.Generator().manual_seed(GRID_SEED)).to(device)
    y = torch.arange(k).repeat_interleave(8).to(device) if k else None
    return z, y


def final_evaluation(cfg: GANTrainConfig, gan: GAN, rt: Runtime) -> dict:
    """Sample quality of `fld_samples` samples (class-balanced labels for a conditional G) and figures."""
    from genlab.gan.evaluate import evaluate_generator

    out = {}
    if cfg.fld_samples:
        res = evaluate_generator(gan, cfg.fld_samples, dataset=cfg.dataset, quick=cfg.fld_quick, seed=cfg.seed,
                                 inception=cfg.inception_fid)
        out |= {f"eval/{k}": v for k, v in res.items()}
    if cfg.figures:
        from genlab.gan.figures import write_figures

        write_figures(cfg, gan, rt.run_dir)
    return out
