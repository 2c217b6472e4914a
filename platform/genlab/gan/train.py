"""The DCGAN training loop (alternating D and G Adam steps, BCE), run by any Runtime (local or Ray Train)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from safetensors.torch import load_file
from tqdm.auto import tqdm

from genlab.core import loop
from genlab.core.checkpoint import load_train_state, load_weights, save_checkpoint, unwrap
from genlab.core.config import to_dict
from genlab.core.runtime import Runtime
from genlab.core.seeding import rng_state, seed_everything, set_rng_state
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
    ema = loop.make_ema(gan.generator, cfg.ema_decay) if cfg.ema_decay else None
    opt_g = torch.optim.Adam(gan.generator.parameters(), lr=cfg.lr_g, betas=cfg.betas)
    opt_d = torch.optim.Adam(gan.discriminator.parameters(), lr=cfg.lr_d, betas=cfg.betas)
    steps_per_epoch = loop.steps_per_epoch(rt.num_examples("train"), cfg.batch_size, cfg.max_steps_per_epoch)
    epoch, step = 0, 0
    if (ckpt := rt.latest_checkpoint()) is not None:
        state = load_train_state(ckpt)
        load_weights(gan, ckpt)
        if ema is not None:
            ema.module.load_state_dict(_generator_state(ckpt))
            ema.n_averaged.fill_(state["ema_n_averaged"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        set_rng_state(state["rng"])
        epoch, step = state["epoch"], state["step"]
        log.info("resumed from %s at epoch %d", ckpt, epoch)
    G, D = rt.prepare_model(gan.generator), rt.prepare_model(gan.discriminator)
    if ema is not None:
        ema = ema.to(rt.device)
    per_worker_batch = max(1, cfg.batch_size // rt.world_size)
    fixed = fixed_inputs(cfg, rt.device)
    metrics: dict = {}

    while epoch < cfg.epochs:
        G.train()
        D.train()
        window = {k: 0.0 for k in DIAGNOSTICS}
        in_window, wait, t0 = 0, 0.0, time.perf_counter()
        bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
                   disable=not (cfg.progress and rt.is_main))
        batches = iter(rt.batches("train", per_worker_batch, epoch))
        for _ in range(steps_per_epoch):
            tw = time.perf_counter()
            images, labels = next(batches)
            wait += time.perf_counter() - tw
            x = to_signed(images)
            y = labels if cfg.model.num_classes else None
            # ALGO LOGIC: one D step on real + detached fake, then one G step through the updated D
            with rt.autocast():
                fake = G(torch.randn(len(x), cfg.model.latent_dim, device=x.device), y)
                real_logits, fake_logits = D(x, y), D(fake.detach(), y)
                loss_d = discriminator_loss(real_logits, fake_logits, cfg.label_smoothing)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            gn_d = loop.grad_norm(D.parameters())
            opt_d.step()
            with rt.autocast():
                loss_g = generator_loss(D(fake, y))
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            gn_g = loop.grad_norm(G.parameters())
            opt_g.step()
            if ema is not None:
                ema.update_parameters(unwrap(G))
            step += 1
            for k, v in zip(DIAGNOSTICS, (loss_d, loss_g, torch.sigmoid(real_logits).mean(),
                                          torch.sigmoid(fake_logits).mean(), gn_d, gn_g)):
                window[k] += float(v.detach()) if torch.is_tensor(v) else v
            in_window += 1
            bar.update()
            if step % cfg.log_every == 0:
                bar.set_postfix(d_real=f"{window['d_real'] / in_window:.2f}",
                                d_fake=f"{window['d_fake'] / in_window:.2f}", refresh=False)
                # every rank reports (Ray Train expects it); rank 0's window is what metrics.jsonl keeps
                rt.report({"step": step, **{f"train/{k}": v / in_window for k, v in window.items()}})
                window = {k: 0.0 for k in DIAGNOSTICS}
                in_window = 0
        bar.close()
        elapsed = time.perf_counter() - t0
        epoch += 1
        metrics = {"step": step, "epoch": epoch, "perf/epoch_s": elapsed,
                   "perf/samples_per_s": steps_per_epoch * per_worker_batch * rt.world_size / elapsed,
                   "perf/data_wait_frac": wait / elapsed}
        sampler = ema.module if ema is not None else unwrap(G)
        if rt.is_main and cfg.figures:
            from genlab.gan.figures import epoch_grid

            epoch_grid(sampler, fixed, rt.run_dir, epoch)
        checkpoint = None
        if rt.is_main:
            checkpoint = save_checkpoint(
                rt.checkpoint_dir(step), family=FAMILY, config=to_dict(cfg), model=gan,
                ema=GAN(cfg.model, ema.module, gan.discriminator) if ema is not None else None,
                train_state={"opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "rng": rng_state(),
                             "epoch": epoch, "step": step,
                             "ema_n_averaged": int(ema.n_averaged) if ema is not None else 0})
        rt.report(metrics, checkpoint=checkpoint)

    final = {}
    if rt.is_main and test is not None:
        final = final_evaluation(cfg, GAN(cfg.model, ema.module if ema is not None else gan.generator,
                                          gan.discriminator), rt)
    if final or rt.world_size > 1:  # Ray Train's report is collective: every rank reports, rank 0's numbers
        rt.report({"step": step, **final})
        metrics |= final
    return metrics


def _generator_state(ckpt) -> dict:
    state = load_file(Path(ckpt) / "ema.safetensors")
    return {k.removeprefix("generator."): v for k, v in state.items() if k.startswith("generator.")}


def fixed_inputs(cfg: GANTrainConfig, device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The same 80 noise vectors (and, conditional, 8 per class) every epoch, so grids show progress."""
    z = torch.randn(80, cfg.model.latent_dim, generator=torch.Generator().manual_seed(GRID_SEED)).to(device)
    y = torch.arange(10).repeat_interleave(8).to(device) if cfg.model.num_classes else None
    return z, y


def final_evaluation(cfg: GANTrainConfig, gan: GAN, rt: Runtime) -> dict:
    """Sample quality of `fld_samples` samples (class-balanced labels for a conditional G) and figures."""
    from genlab.gan.evaluate import evaluate_generator

    out = {}
    if cfg.fld_samples:
        res = evaluate_generator(gan, cfg.fld_samples, dataset=cfg.dataset, quick=cfg.fld_quick, seed=cfg.seed)
        out |= {f"eval/{k}": v for k, v in res.items()}
    if cfg.figures:
        from genlab.gan.figures import write_figures

        write_figures(cfg, gan, rt.run_dir)
    return out
