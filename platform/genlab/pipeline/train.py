"""The training loops of the pipeline's prior and refiner, on the one harness (local or Ray Train workers).

Both read MNIST batches like every image family and compute their inputs from frozen, trained parts on the fly:
the VAE posterior of each image, and (prior) the CLIP text embedding of a training-template caption of its digit
or the noised CLIP image embedding of the image itself.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from genlab.core import loop
from genlab.core.checkpoint import load_model
from genlab.core.harness import fit
from genlab.core.runtime import Runtime
from genlab.core.seeding import seed_everything
from genlab.core.train_state import TrainState
from genlab.data.captions import DIGITS
from genlab.eval.reconstruction import to_float
from genlab.gan.losses import discriminator_loss, generator_loss
from genlab.pipeline.config import FrozenParts, PriorTrainConfig, RefinerTrainConfig, TextDiffusionTrainConfig
from genlab.pipeline.prior import MixturePrior, noised_image_embedding
from genlab.pipeline.prompts import digit_prompts
from genlab.pipeline.refiner import Refiner

FAMILY = "pipeline"
EVAL_IMAGES = 2000


def load_frozen(parts: FrozenParts, device, clip: bool = True, vae: bool = True):
    """(clip, tokenizer, vae) in eval mode, no gradients; each None when not asked for."""
    vae = load_model(parts.vae, device=device).requires_grad_(False) if vae else None
    if not clip:
        return None, None, vae
    from genlab.multimodal.models import create_clip

    model, _, tokenizer = create_clip(parts.clip_model, parts.clip_weights, device)
    return model.eval().requires_grad_(False), tokenizer, vae


class CaptionTable:
    """Every training-template prompt of every digit, embedded once; `sample(labels)` picks one per label."""

    def __init__(self, clip, tokenizer, split: str = "train", device="cpu"):
        from genlab.multimodal.models import encode_texts

        pools = digit_prompts(split)
        self.counts = torch.tensor([len(p) for p in pools], device=device)
        self.starts = torch.cumsum(self.counts, 0) - self.counts
        self.embeddings = encode_texts(clip, tokenizer, [p for pool in pools for p in pool]).to(device)

    def sample(self, labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        u = torch.rand(len(labels), generator=generator, device=labels.device)
        return self.embeddings[self.starts[labels] + (u * self.counts[labels]).long()]


def posterior_sample(vae, x: torch.Tensor) -> torch.Tensor:
    return vae.reparameterize(*vae.encode(x))


def train_prior(cfg: PriorTrainConfig, rt: Runtime, test: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict:
    from genlab.multimodal.models import prepare_images

    seed_everything(cfg.seed + 1000 * rt.rank)
    clip, tokenizer, vae = load_frozen(cfg.parts, rt.device)
    captions = CaptionTable(clip, tokenizer, "train", rt.device)
    prior = MixturePrior(cfg.prior)
    opt = torch.optim.Adam(prior.parameters(), lr=cfg.lr)
    steps_per_epoch = loop.steps_per_epoch(rt.num_examples("train"), cfg.batch_size, cfg.max_steps_per_epoch)
    sched = loop.warmup_cosine(opt, steps_per_epoch * cfg.epochs)
    state = TrainState(prior, {"optimizer": opt}, {"scheduler": sched})
    heldout = CaptionTable(clip, tokenizer, "heldout", rt.device) if rt.is_main and test is not None else None

    def condition(images: torch.Tensor, labels: torch.Tensor, image_frac: float) -> torch.Tensor:
        e = captions.sample(labels)
        if image_frac > 0:
            e_img = noised_image_embedding(clip.encode_image(prepare_images(images, clip), normalize=True),
                                           cfg.image_noise)
            e = torch.where((torch.rand(len(e), device=e.device) < image_frac)[:, None], e_img, e)
        return e

    def step(batch) -> dict:
        images, labels = batch
        with torch.no_grad():
            x = to_float(images)
            z = posterior_sample(vae, x) if cfg.target == "sample" else vae.encode(x)[0]
            e = condition(images, labels, cfg.image_embed_frac)
        # ALGO LOGIC: maximum likelihood of the posterior sample under the mixture the condition names
        nll = -state.module().log_prob(e, z).mean()
        opt.zero_grad(set_to_none=True)
        nll.backward()
        opt.step()
        sched.step()
        return {"loss": nll.detach(), "nll_per_dim": nll.detach() / cfg.prior.latent_dim}

    @torch.no_grad()
    def eval_fn() -> dict:
        """NLL of test posteriors given prompts of the held-out templates (what the faithfulness bar asks)."""
        if test is None:
            return {}
        prior.eval()
        images, labels = test[0][:EVAL_IMAGES].to(rt.device), test[1][:EVAL_IMAGES].to(rt.device)
        gen = torch.Generator(device=rt.device).manual_seed(0)
        mu = vae.encode(to_float(images))[0]
        return {"eval/nll_heldout_prompts": float(-prior.log_prob(heldout.sample(labels, gen), mu).mean())}

    return fit(rt, state, step, family=FAMILY, config=cfg, total_steps=steps_per_epoch * cfg.epochs,
               steps_per_epoch=steps_per_epoch, batch_size=cfg.batch_size, eval_fn=eval_fn,
               progress=cfg.progress, desc=cfg.run_name())


REFINER_DIAGNOSTICS = ("loss_d", "loss_g_adv", "l1", "clip_content", "d_real", "d_fake")


def train_refiner(cfg: RefinerTrainConfig, rt: Runtime,
                  test: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict:
    from genlab.multimodal.models import prepare_float_images

    seed_everything(cfg.seed + 1000 * rt.rank)
    conditioned = cfg.text_condition
    clip, tokenizer, vae = load_frozen(cfg.parts, rt.device, clip=cfg.clip_weight > 0 or conditioned)
    captions = CaptionTable(clip, tokenizer, "train", rt.device) if conditioned else None
    # the sizes the options imply, in the config the checkpoint records (load_model rebuilds from it)
    cfg = dataclasses.replace(cfg, refiner=dataclasses.replace(
        cfg.refiner, embed_dim=captions.embeddings.shape[1] if conditioned else 0,
        d_classes=len(DIGITS) if cfg.class_discriminator else 0))
    refiner = Refiner(cfg.refiner)
    opt_g = torch.optim.Adam(refiner.generator.parameters(), lr=cfg.lr_g, betas=cfg.betas)
    opt_d = torch.optim.Adam(refiner.discriminator.parameters(), lr=cfg.lr_d, betas=cfg.betas)
    steps_per_epoch = loop.steps_per_epoch(rt.num_examples("train"), cfg.batch_size, cfg.max_steps_per_epoch)
    state = TrainState(refiner, {"opt_g": opt_g, "opt_d": opt_d}, ddp=("generator", "discriminator"))

    def step(batch) -> dict:
        images, labels = batch
        x = to_float(images)
        with torch.no_grad():
            raw = vae.decode(posterior_sample(vae, x)) * 2 - 1
        real = x * 2 - 1
        e = captions.sample(labels) if conditioned else None  # a caption of x, as the prompt would be
        y = labels if cfg.refiner.d_classes else None
        G, D = state.module("generator"), state.module("discriminator")
        # ALGO LOGIC: pix2pix: D tells (decode, real image) from (decode, refined decode); G fools D and stays
        # close (L1) to the image the decode came from
        fake = G(raw, e)
        real_logits, fake_logits = D(torch.cat([raw, real], 1), y), D(torch.cat([raw, fake.detach()], 1), y)
        loss_d = discriminator_loss(real_logits, fake_logits)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        adv = generator_loss(D(torch.cat([raw, fake], 1), y))
        l1 = F.l1_loss(fake, real)
        content = torch.zeros((), device=x.device)
        if clip is not None:  # what CLIP sees in the refined image stays what it sees in x
            with torch.no_grad():
                target = clip.encode_image(prepare_float_images(x, clip), normalize=True)
            seen = clip.encode_image(prepare_float_images((fake + 1) / 2, clip), normalize=True)
            content = 1 - (seen * target).sum(1).mean()
        opt_g.zero_grad(set_to_none=True)
        (adv + cfg.l1_weight * l1 + cfg.clip_weight * content).backward()
        opt_g.step()
        return dict(zip(REFINER_DIAGNOSTICS, (loss_d.detach(), adv.detach(), l1.detach(), content.detach(),
                                              torch.sigmoid(real_logits.detach()).mean(),
                                              torch.sigmoid(fake_logits.detach()).mean())))

    @torch.no_grad()
    def eval_fn() -> dict:
        """L1 to the test image of raw and refined decodes of test posteriors (sharpening must not drift)."""
        if test is None:
            return {}
        refiner.eval()
        gen = torch.Generator(device=rt.device).manual_seed(0)
        x, labels = to_float(test[0][:EVAL_IMAGES].to(rt.device)), test[1][:EVAL_IMAGES].to(rt.device)
        mu, logvar = vae.encode(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=gen, device=mu.device)
        raw = vae.decode(z)
        e = captions.sample(labels, gen) if conditioned else None
        refined = (refiner.generator(raw * 2 - 1, e) + 1) / 2
        return {"eval/l1_raw": float((raw - x).abs().mean()), "eval/l1_refined": float((refined - x).abs().mean())}

    return fit(rt, state, step, family=FAMILY, config=cfg, total_steps=steps_per_epoch * cfg.epochs,
               steps_per_epoch=steps_per_epoch, batch_size=cfg.batch_size, eval_fn=eval_fn,
               progress=cfg.progress, desc=cfg.run_name())


def train_text_diffusion(cfg: TextDiffusionTrainConfig, rt: Runtime,
                         test: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict:
    """Chapter 5.4's DDPM loop with the U-Net conditioned on the CLIP text embedding of a training-template
    caption of each image's digit (a fresh caption every time an image is seen)."""
    from genlab.diffusion.train import train

    clip, tokenizer, _ = load_frozen(cfg.parts, rt.device, vae=False)
    captions = CaptionTable(clip, tokenizer, "train", rt.device)
    del clip  # the table holds every caption's embedding: the text tower is not needed while training
    d = cfg.diffusion
    d = dataclasses.replace(d, seed=cfg.seed, progress=cfg.progress,
                            unet=dataclasses.replace(d.unet, cond_dim=captions.embeddings.shape[1]))
    return train(d, rt, test, condition=captions.sample)
