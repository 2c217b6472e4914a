"""Sample a trained diffusion model and score the samples (FLD, precision/recall, entropy, speed)."""

from __future__ import annotations

import dataclasses

import torch

from genlab.diffusion.samplers import SamplerConfig, sample
from genlab.diffusion.schedule import NoiseSchedule
from genlab.eval.sample_quality import sample_quality, score_sampler


def load_for_sampling(path, device="cpu") -> tuple:
    """A run or checkpoint directory -> (EMA eps-model, its noise schedule, the checkpoint path)."""
    from genlab.core.checkpoint import find_latest_checkpoint, load_model, read_checkpoint_config
    from genlab.core.config import from_dict
    from genlab.diffusion.config import DiffusionConfig

    ckpt = find_latest_checkpoint(path)
    if ckpt is None:
        raise FileNotFoundError(f"{path}: no genlab checkpoint found (pass a run directory or a checkpoint)")
    cfg = from_dict(DiffusionConfig, read_checkpoint_config(ckpt)["config"])
    return load_model(ckpt, ema=True, device=device), NoiseSchedule(cfg.schedule), ckpt


def balanced_labels(n: int, num_classes: int = 10) -> torch.Tensor:
    return torch.arange(n) % num_classes


def evaluate_samples(model, schedule: NoiseSchedule, sampler: SamplerConfig, n: int, dataset: str = "mnist",
                     quick: bool = False, device="cpu", seed: int = 0, progress: bool = False,
                     conditional_guidance: float | None = None, inception: bool = False) -> dict:
    """Unconditional samples -> quality + samples/s (`inception`: and FID on Inception-v3 features). For a
    class-conditional model also class-balanced guided samples (scale `conditional_guidance`, default the
    sampler's) -> agreement with the requested class."""
    out = score_sampler(lambda: sample(model, schedule, n, sampler, seed=seed, device=device, progress=progress)[0],
                        dataset, quick, inception=inception)
    out.pop("images")
    out["sampler"] = f"{sampler.kind}-{schedule.T if sampler.kind == 'ddpm' else sampler.steps}"
    if getattr(model, "cfg", None) is not None and model.cfg.num_classes:
        guided = dataclasses.replace(sampler, guidance=conditional_guidance or sampler.guidance)
        labels = balanced_labels(n, model.cfg.num_classes)
        cond, _ = sample(model, schedule, n, guided, labels=labels, seed=seed + 1, device=device, progress=progress)
        q = sample_quality(cond, dataset, quick, requested=labels)
        out |= {"cond_class_agreement": q["class_agreement"], "cond_fld": q["fld"], "cond_fld_ratio": q["fld_ratio"],
                "cond_guidance": guided.guidance}
    return out
