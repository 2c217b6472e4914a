"""The DDPM training loop (eps-prediction MSE, Ho et al. 2020), run by any Runtime (local or Ray Train)."""

from __future__ import annotations

import logging
import time

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from genlab.core import loop
from genlab.core.checkpoint import load_train_state, load_weights, save_checkpoint, unwrap
from genlab.core.config import to_dict
from genlab.core.runtime import Runtime
from genlab.core.seeding import rng_state, seed_everything, set_rng_state
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


def drop_labels(labels: torch.Tensor, p: float, null_class: int) -> torch.Tensor:
    """Replace a random fraction p of labels by the null class (classifier-free guidance training)."""
    if p <= 0:
        return labels
    return torch.where(torch.rand(labels.shape, device=labels.device) < p, torch.full_like(labels, null_class),
                       labels)


def train(cfg: DiffusionConfig, rt: Runtime, test: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict:
    """Train `cfg` on `rt`'s "train" batches; rank 0 evaluates with the EMA weights each epoch."""
    seed_everything(cfg.seed + 1000 * rt.rank)
    schedule = NoiseSchedule(cfg.schedule)
    model = UNet(cfg.unet)
    ema = loop.make_ema(model, cfg.ema_decay)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    steps_per_epoch = loop.steps_per_epoch(rt.num_examples("train"), cfg.batch_size, cfg.max_steps_per_epoch)
    sched = loop.warmup_cosine(opt, steps_per_epoch * cfg.epochs, cfg.warmup_steps)
    epoch, step = 0, 0
    if (ckpt := rt.latest_checkpoint()) is not None:
        state = load_train_state(ckpt)
        load_weights(model, ckpt)
        load_weights(ema.module, ckpt, ema=True)
        ema.n_averaged.fill_(state["ema_n_averaged"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        epoch, step = state["epoch"], state["step"]
        log.info("resumed from %s at epoch %d", ckpt, epoch)
    model = rt.prepare_model(model)
    ema = ema.to(rt.device)
    per_worker_batch = max(1, cfg.batch_size // rt.world_size)
    metrics: dict = {}

    while epoch < cfg.epochs:
        model.train()
        sums, n, wait, t0 = {"loss": 0.0, "grad_norm": 0.0}, 0, 0.0, time.perf_counter()
        bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
                   disable=not (cfg.progress and rt.is_main))
        batches = iter(rt.batches("train", per_worker_batch, epoch))
        for _ in range(steps_per_epoch):
            tw = time.perf_counter()
            images, labels = next(batches)
            wait += time.perf_counter() - tw
            # ALGO LOGIC: one DDPM step: random t, noise the batch, regress the noise
            x0 = to_signed(images)
            y = drop_labels(labels, cfg.label_dropout, cfg.unet.num_classes) if cfg.conditional else None
            with rt.autocast():
                loss = diffusion_loss(model, schedule, x0, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gnorm = (torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip) if cfg.grad_clip
                     else torch.tensor(loop.grad_norm(model.parameters())))
            opt.step()
            sched.step()
            ema.update_parameters(unwrap(model))
            step += 1
            sums["loss"] += float(loss.detach())
            sums["grad_norm"] += float(gnorm)
            n += 1
            bar.update()
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}", refresh=False)
        bar.close()
        elapsed = time.perf_counter() - t0
        epoch += 1
        metrics = {"step": step, "epoch": epoch, "train/lr": sched.get_last_lr()[0],
                   **{f"train/{k}": v / n for k, v in sums.items()},
                   "perf/epoch_s": elapsed, "perf/samples_per_s": n * per_worker_batch * rt.world_size / elapsed,
                   "perf/data_wait_frac": wait / elapsed}
        if rt.is_main and test is not None:
            metrics["eval/loss_ema"] = held_out_loss(ema.module, schedule, test, cfg, rt.device)
            if cfg.figures and cfg.grid_steps:
                from genlab.diffusion.figures import epoch_grid

                epoch_grid(ema.module, schedule, cfg, rt.run_dir, epoch, rt.device)
        checkpoint = None
        if rt.is_main:
            checkpoint = save_checkpoint(
                rt.checkpoint_dir(step), family=FAMILY, config=to_dict(cfg), model=model, ema=ema.module,
                train_state={"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "rng": rng_state(),
                             "epoch": epoch, "step": step, "ema_n_averaged": int(ema.n_averaged)})
        rt.report(metrics, checkpoint=checkpoint)

    final = final_evaluation(cfg, ema.module, schedule, test, rt) if rt.is_main and test is not None else {}
    if final or rt.world_size > 1:  # Ray Train's report is collective: every rank reports, rank 0's numbers
        rt.report({"step": step, **final})
        metrics |= final
    return metrics


@torch.no_grad()
def held_out_loss(model, schedule: NoiseSchedule, test, cfg: DiffusionConfig, device) -> float:
    """The training objective on test images with fixed t and noise, so epochs compare exactly."""
    model.eval()
    gen = torch.Generator().manual_seed(EVAL_SEED)
    images, labels = test[0][:cfg.eval_images], test[1][:cfg.eval_images]
    total = 0.0
    for s in range(0, len(images), 500):
        x0 = to_signed(images[s:s + 500]).to(device)
        y = labels[s:s + 500].to(device) if cfg.conditional else None
        total += float(diffusion_loss(model, schedule, x0, y, generator=gen)) * len(x0)
    return total / len(images)


def final_evaluation(cfg: DiffusionConfig, model, schedule: NoiseSchedule, test, rt: Runtime) -> dict:
    """FLD of `fld_samples` unconditional samples (and, for conditional models, class agreement), figures."""
    from genlab.diffusion.evaluate import evaluate_samples

    out = {}
    if cfg.fld_samples:
        res = evaluate_samples(model, schedule, cfg.sampler, cfg.fld_samples, dataset=cfg.dataset,
                               quick=cfg.fld_quick, device=rt.device, seed=cfg.seed, progress=cfg.progress)
        out |= {f"eval/{k}": v for k, v in res.items()}
    if cfg.figures:
        from genlab.diffusion.figures import write_figures

        write_figures(cfg, model, schedule, test, rt.run_dir, rt.device)
    return out
