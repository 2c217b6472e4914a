"""One training loop for autoencoders and VAEs, run by any Runtime (local or Ray Train)."""

from __future__ import annotations

import logging

import torch

from genlab.autoencoders.config import TrainConfig
from genlab.autoencoders.losses import add_gaussian_noise, ae_loss, vae_loss
from genlab.autoencoders.models import VAE, build_model
from genlab.core import loop
from genlab.core.harness import fit
from genlab.core.runtime import Runtime
from genlab.core.seeding import seed_everything
from genlab.core.train_state import TrainState
from genlab.eval.likelihood import binarize, vae_test_metrics
from genlab.eval.reconstruction import reconstruction_metrics, to_float

log = logging.getLogger(__name__)
FAMILY = "autoencoders"
EVAL_NOISE_SEED = 1234


def train(cfg: TrainConfig, rt: Runtime, test: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict:
    """Train `cfg` on `rt`'s "train" batches; rank 0 evaluates on `test` each epoch. Returns the last metrics."""
    seed_everything(cfg.seed + 1000 * rt.rank)
    model = build_model(cfg.model)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    steps_per_epoch = loop.steps_per_epoch(rt.num_examples("train"), cfg.batch_size, cfg.max_steps_per_epoch)
    sched = loop.warmup_cosine(opt, steps_per_epoch * cfg.epochs, cosine=cfg.cosine_decay)
    state = TrainState(model, {"optimizer": opt}, {"scheduler": sched})

    def step(batch) -> dict[str, torch.Tensor]:
        # ALGO LOGIC: one gradient step of the chosen objective
        images, _labels = batch
        x = to_float(images)
        with rt.autocast():
            parts = _loss(cfg, state.module(), x)
        opt.zero_grad(set_to_none=True)
        parts["loss"].backward()
        opt.step()
        sched.step()
        return {k: v.detach() for k, v in parts.items()}

    def eval_fn() -> dict:
        return {f"eval/{k}": v for k, v in evaluate(cfg, model, test, rt.device).items()} if test is not None else {}

    return fit(rt, state, step, family=FAMILY, config=cfg, total_steps=steps_per_epoch * cfg.epochs,
               steps_per_epoch=steps_per_epoch, batch_size=cfg.batch_size, eval_fn=eval_fn,
               final_fn=(lambda: final_evaluation(cfg, model, test, rt)) if test is not None else None,
               progress=cfg.progress, desc=cfg.run_name())


def _loss(cfg: TrainConfig, model, x: torch.Tensor) -> dict[str, torch.Tensor]:
    if cfg.model.kind == "vae":
        if cfg.binarize:
            x = torch.bernoulli(x)
        logits, mu, logvar = model(x)
        return vae_loss(logits, x, mu, logvar, beta=cfg.beta)
    inp = add_gaussian_noise(x, cfg.noise_factor) if cfg.objective == "denoising" else x
    logits, z = model(inp)
    return ae_loss(logits, x, z, cfg.sparsity_weight if cfg.objective == "sparse" else 0.0)


def reconstruct_fn(model):
    """images in [0, 1] -> reconstructions in [0, 1] (posterior mean code for a VAE)."""
    if isinstance(model, VAE):
        return lambda x: model.decode(model.encode(x)[0])
    return lambda x: model.decode(model.encode(x))


def _targets(cfg: TrainConfig, images: torch.Tensor) -> torch.Tensor:
    """What a VAE is scored on: binarised images (grey sets), else the intensities (colour)."""
    return binarize(images) if cfg.binarize else to_float(images)


@torch.no_grad()
def evaluate(cfg: TrainConfig, model, test, device) -> dict[str, float]:
    """Cheap per-epoch test metrics (reconstruction; negative ELBO for VAEs)."""
    model.eval()
    images = test[0][:cfg.eval_images]
    corrupt = None
    if cfg.model.kind == "ae" and cfg.objective == "denoising":
        gen = torch.Generator(device=device).manual_seed(EVAL_NOISE_SEED)
        corrupt = lambda x: add_gaussian_noise(x, cfg.noise_factor, generator=gen)  # noqa: E731
    out = reconstruction_metrics(reconstruct_fn(model), images, corrupt=corrupt, device=device)
    if cfg.model.kind == "vae":
        out |= {k: v for k, v in vae_test_metrics(model, _targets(cfg, images), k=1, device=device).items()
                if k == "neg_elbo_nats"}
    if cfg.model.kind == "ae" and cfg.objective == "sparse":
        z = torch.cat([model.encode(to_float(images[s:s + 1000]).to(device)) for s in range(0, len(images), 1000)])
        out |= {"code_l1": float(z.abs().sum(1).mean()), "code_zero_frac": float((z.abs() < 1e-2).float().mean())}
    return out


def final_evaluation(cfg: TrainConfig, model, test, rt: Runtime) -> dict:
    """The expensive numbers (IW-NLL) and the figures, once at the end, on rank 0."""
    out = {}
    if cfg.model.kind == "vae" and cfg.iw_k > 0:
        res = vae_test_metrics(model, _targets(cfg, test[0][:cfg.iw_images]), k=cfg.iw_k, device=rt.device,
                               progress=cfg.progress)
        out |= {f"eval/{k}": v for k, v in res.items()}
    if cfg.figures:
        from genlab.autoencoders.figures import write_figures

        write_figures(cfg, model, test, rt.run_dir)
    return out
