"""Body of jobs/pipeline.py: (train the VAE,) train the prior and the refiner on Ray Train, assemble the
pipeline, measure its bars. Each stage is a run directory inside the pipeline's run; `--ray.resume <that run>`
skips finished stages and continues the interrupted one from its checkpoint."""

from __future__ import annotations

import dataclasses
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from genlab.autoencoders import ModelConfig, TrainConfig
from genlab.core.checkpoint import find_latest_checkpoint, newest_run, read_checkpoint_config
from genlab.core.config import load_json, save_json, to_dict
from genlab.core.rundir import make_run_dir
from genlab.distributed.env import configure_ray_env, quiet_console
from genlab.distributed.jobs import setup_logging
from genlab.distributed.trainer import RayConfig, fit, share_of_cpus
from genlab.pipeline.config import (FrozenParts, PriorTrainConfig, RefinerTrainConfig, TextDiffusionTrainConfig,
                                    smoke_prior, smoke_refiner, smoke_text_diffusion)
from genlab.pipeline.pipeline import DEFAULT_TEMPERATURE

log = logging.getLogger(__name__)


@dataclass
class PipelineArgs:
    clip: str = ""
    """The CLIP: a jobs/clip.py run directory, a checkpoint or its model.safetensors. Empty: the newest runs/clip-*
    run with a checkpoint."""
    clip_model: str = "genlab-clip-rn"
    """open_clip model name (a genlab run or checkpoint names its own)."""
    vae: str = ""
    """A chapter 5.2 VAE (jobs/vae.py run directory or checkpoint). Empty: train one here first (`vae_epochs`)."""
    vae_epochs: int = 10
    """Epochs of the conv VAE (latent 32) trained when --vae is empty."""
    prior: PriorTrainConfig = field(default_factory=PriorTrainConfig)
    refiner: RefinerTrainConfig = field(default_factory=RefinerTrainConfig)
    text_ddpm: bool = False
    """Also train the alternative generator, a DDPM conditioned on the CLIP text embedding (classifier-free
    guidance), assemble it as a second pipeline (`pipeline_ddpm/`, the same interface) and evaluate it the same
    way (`ddpm/report.json`)."""
    diffusion: TextDiffusionTrainConfig = field(default_factory=TextDiffusionTrainConfig)
    """The text-conditioned DDPM's training (with --text-ddpm); its sampler is the pipeline's default."""
    ray: RayConfig = field(default_factory=RayConfig)
    eval_per_digit: int = 1000
    """Images per digit for the final evaluation (one held-out-template prompt each); 0 skips it."""
    temperature: float = DEFAULT_TEMPERATURE
    """Scale of the prior's Gaussians when sampling (lower: more typical, less varied; 1 = the fitted prior)."""
    seed: int = 0
    smoke_test: bool = False
    """A few steps per stage and a small evaluation: checks everything end to end in about a minute."""


def resolve_clip(clip: str, model: str) -> tuple[str, str]:
    from genlab.multimodal.models import check_weights, resolve_weights

    if not clip:
        run = newest_run("runs", "clip-*")
        if run is None:
            raise FileNotFoundError("no trained CLIP under runs/: train one with `python jobs/clip.py` (about 35 "
                                    "min here; --smoke-test for a minute) or pass --clip <run dir | checkpoint>")
        clip = str(run)
    if not Path(clip).exists():
        raise FileNotFoundError(f"--clip {clip}: no such file or directory")
    model, weights = resolve_weights(str(Path(clip).resolve()), model)
    check_weights(model, weights)
    return model, weights


def _vae_checkpoint(path: str) -> Path:
    ckpt = find_latest_checkpoint(path) if Path(path).exists() else None
    if ckpt is None:
        raise FileNotFoundError(f"--vae {path}: no checkpoint there (train one with `python jobs/vae.py`)")
    meta = read_checkpoint_config(ckpt)
    if meta["family"] != "autoencoders" or meta["config"]["model"]["kind"] != "vae":
        raise ValueError(f"--vae {path}: not a VAE checkpoint ({meta['family']}, {meta['config'].get('model')})")
    return ckpt.resolve()


def _stage(name: str, loop: str, cfg, run_dir: Path, ray_cfg: RayConfig) -> Path:
    """Train one stage in run_dir/name (resuming it if it has a checkpoint); returns its final checkpoint."""
    stage_dir = run_dir / name
    if (stage_dir / "done.json").exists():
        log.info("stage %s: finished before, kept", name)
        return find_latest_checkpoint(stage_dir)
    resume = stage_dir.exists() and find_latest_checkpoint(stage_dir) is not None
    stage_dir.mkdir(exist_ok=True)
    save_json(to_dict(cfg), stage_dir / "config.json")
    log.info("stage %s: %s", name, "resuming" if resume else "training")
    metrics = fit(loop, cfg, stage_dir, dataclasses.replace(ray_cfg, resume=str(stage_dir) if resume else ""),
                  "mnist")
    save_json(metrics, stage_dir / "done.json")
    return find_latest_checkpoint(stage_dir)


def run_pipeline_job(args: PipelineArgs) -> Path:
    setup_logging()
    configure_ray_env()
    clip_model, clip_weights = resolve_clip(args.clip, args.clip_model)  # bad inputs fail before any training
    vae_ckpt = _vae_checkpoint(args.vae) if args.vae else None
    ray_cfg = dataclasses.replace(args.ray, use_gpu=False) if args.smoke_test else args.ray
    if ray_cfg.resume:
        run_dir = Path(ray_cfg.resume).resolve()
        if not (run_dir / "job.json").exists():
            raise FileNotFoundError(f"--ray.resume {run_dir}: not a pipeline run (no job.json)")
        flags = json.loads(json.dumps(to_dict(dataclasses.replace(args, ray=RayConfig()))))  # tuples as lists
        if load_json(run_dir / "job.json") != flags:
            raise ValueError(f"--ray.resume {run_dir}: its job.json differs from this command's flags; resume with "
                             "the same flags")
        ray_cfg = dataclasses.replace(ray_cfg, resume="")
    else:
        run_dir = make_run_dir("pipeline", args.seed, root=ray_cfg.storage)
        save_json(to_dict(dataclasses.replace(args, ray=RayConfig())), run_dir / "job.json")

    if vae_ckpt is None:
        from genlab.autoencoders.config import smoke_config

        vae_cfg = TrainConfig(model=ModelConfig(kind="vae", arch="conv", latent_dim=32), epochs=args.vae_epochs,
                              iw_k=0, seed=args.seed, figures=False)
        vae_cfg = smoke_config(vae_cfg) if args.smoke_test else vae_cfg
        vae_ckpt = _stage("vae", "genlab.autoencoders.train:train", vae_cfg, run_dir, ray_cfg)
    vae_meta = read_checkpoint_config(vae_ckpt)
    parts = FrozenParts(clip_model=clip_model, clip_weights=clip_weights, vae=str(vae_ckpt))
    embed_dim = _clip_embed_dim(clip_model)
    prior_cfg = dataclasses.replace(args.prior, parts=parts, seed=args.seed, prior=dataclasses.replace(
        args.prior.prior, embed_dim=embed_dim, latent_dim=vae_meta["config"]["model"]["latent_dim"]))
    refiner_cfg = dataclasses.replace(args.refiner, parts=parts, seed=args.seed)
    ddpm_cfg = dataclasses.replace(args.diffusion, parts=dataclasses.replace(parts, vae=""), seed=args.seed)
    if args.smoke_test:
        prior_cfg, refiner_cfg = smoke_prior(prior_cfg), smoke_refiner(refiner_cfg)
        ddpm_cfg = smoke_text_diffusion(ddpm_cfg)
    stages = {"prior": ("genlab.pipeline.train:train_prior", prior_cfg),
              "refiner": ("genlab.pipeline.train:train_refiner", refiner_cfg)}
    if args.text_ddpm:
        stages["text_ddpm"] = ("genlab.pipeline.train:train_text_diffusion", ddpm_cfg)
    # the stages need only the frozen parts: trained at the same time, each on its share of the CPUs
    pending = [stage for stage in stages if not (run_dir / stage / "done.json").exists()]
    parallel = max(1, len(pending)) if ray_cfg.num_workers else 1  # in-process runs share torch's global RNG
    stage_ray_cfg = share_of_cpus(ray_cfg, parallel)
    with quiet_console.pinned_to(run_dir), ThreadPoolExecutor(parallel) as pool:
        futures = {name: pool.submit(_stage, name, loop, cfg, run_dir, stage_ray_cfg)
                   for name, (loop, cfg) in stages.items()}
        ckpts = {name: f.result() for name, f in futures.items()}
    prior_ckpt, refiner_ckpt = ckpts["prior"], ckpts["refiner"]

    pipe_dir = run_dir / "pipeline"
    if not (pipe_dir / "pipeline.json").exists():  # a resumed run keeps what it assembled and measured
        assemble(parts, prior_ckpt, refiner_ckpt, pipe_dir)
    print(f"pipeline: {pipe_dir}")
    from genlab.pipeline import TextToImagePipeline
    from genlab.pipeline.figures import write_figures

    pipe = TextToImagePipeline.from_pretrained(pipe_dir)
    if not (run_dir / "raw_vs_refined.png").exists():
        write_figures(pipe, run_dir, seed=args.seed, temperature=args.temperature)
    per_digit = min(args.eval_per_digit, 20) if args.smoke_test else args.eval_per_digit
    _evaluate(pipe, run_dir, per_digit, args)
    if args.text_ddpm:
        ddpm_dir = run_dir / "pipeline_ddpm"
        if not (ddpm_dir / "pipeline.json").exists():
            assemble_diffusion(parts, ckpts["text_ddpm"], ddpm_dir)
        print(f"pipeline (text-conditioned DDPM): {ddpm_dir}")
        ddpm = TextToImagePipeline.from_pretrained(ddpm_dir)
        (run_dir / "ddpm").mkdir(exist_ok=True)
        if not (run_dir / "ddpm" / "prompts_ddpm.png").exists():
            write_figures(ddpm, run_dir / "ddpm", seed=args.seed)
        _evaluate(ddpm, run_dir / "ddpm", per_digit, args)
    print(f"run directory: {run_dir}")
    return run_dir


def _evaluate(pipe, out: Path, per_digit: int, args: PipelineArgs) -> None:
    """The bars on `per_digit` images per digit into out/report.json (kept when there), printed."""
    if per_digit and not (out / "report.json").exists():
        from genlab.pipeline.evaluate import evaluate_pipeline

        save_json(evaluate_pipeline(pipe, per_digit, seed=args.seed, quick=args.smoke_test,
                                    temperature=args.temperature), out / "report.json")
    if (out / "report.json").exists():
        report = load_json(out / "report.json")
        print(f"{pipe.generator}:")
        for key in ("refined/class_agreement", "raw/class_agreement", "refined/fld_ratio", "raw/fld_ratio",
                    "refiner_fld_reduction", "refined/class_entropy_frac", "diversity/mean_recall",
                    "diversity/mean_precision", "images_per_s"):
            print(f"  {key} = {report[key]:.4f}")


def _clip_embed_dim(model: str) -> int:
    import open_clip

    from genlab.multimodal.models import register_configs

    register_configs()
    return open_clip.get_model_config(model)["embed_dim"]


def assemble(parts: FrozenParts, prior_ckpt: Path, refiner_ckpt: Path, out: Path) -> Path:
    """Write the pipeline directory from the stages' checkpoints."""
    from genlab.core.checkpoint import load_model
    from genlab.multimodal.models import create_clip
    from genlab.pipeline import TextToImagePipeline

    clip, _, tokenizer = create_clip(parts.clip_model, parts.clip_weights)
    refiner = load_model(refiner_ckpt).generator
    pipe = TextToImagePipeline(clip, tokenizer, load_model(prior_ckpt), load_model(parts.vae), refiner,
                               parts.clip_model)
    return pipe.save_pretrained(out, parts.clip_weights, parts.vae)


def assemble_diffusion(parts: FrozenParts, ddpm_ckpt: Path, out: Path) -> Path:
    """Write the DDPM pipeline's directory from the CLIP and the text-conditioned DDPM's checkpoint."""
    from genlab.multimodal.models import create_clip
    from genlab.pipeline import TextToImagePipeline
    from genlab.pipeline.text_diffusion import TextDiffusion

    clip, _, tokenizer = create_clip(parts.clip_model, parts.clip_weights)
    pipe = TextToImagePipeline(clip, tokenizer, clip_model=parts.clip_model,
                               diffusion=TextDiffusion.load(ddpm_ckpt, ema=True))
    return pipe.save_pretrained(out, parts.clip_weights, diffusion_checkpoint=ddpm_ckpt)
