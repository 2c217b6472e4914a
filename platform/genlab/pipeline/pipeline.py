"""TextToImagePipeline: one object, one call, every stage's output (like a diffusers pipeline).

    pipe = TextToImagePipeline.from_pretrained("runs/pipeline-.../pipeline")
    out = pipe(["a seven", "the digit 2, small, written in red"], num_images=4, seed=0)
    out.images  # refined (8, 1, 28, 28) in [0, 1]; out.raw: the VAE decodes they came from; out.timings_ms

Two generators behind the same call: the prior -> VAE decoder -> GAN refiner chain, or a text-conditioned DDPM
(chapter 5.4's U-Net reading the CLIP text embedding, classifier-free guidance). Saved as one directory:
`pipeline.json` (what is where), `clip/model.safetensors` (loads in plain open_clip), and genlab checkpoints
`prior/`, `vae/`, `refiner/` or `diffusion/`.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from genlab.core.checkpoint import load_model, save_checkpoint
from genlab.core.config import load_json, save_json, to_dict

FORMAT = 1
MAX_PROMPT_CHARS = 300  # our captions are < 100 characters; CLIP reads 32 tokens and would drop the rest silently
DEFAULT_TEMPERATURE = 0.8  # the prior's Gaussians scaled by 0.8: more faithful, a little less varied (RESULTS.md)
MAX_IMAGES = 256  # per call (prompts x num_images): a bound on memory, not on quality


class PromptError(ValueError):
    """A prompt or request the pipeline refuses (empty, too long, too many images); the message says why."""


@dataclass
class PipelineOutput:
    images: torch.Tensor
    """Final images (N, 1, 28, 28) in [0, 1]: refined, or the raw decodes when refine=False."""
    raw: torch.Tensor
    """The VAE decodes (Bernoulli means) the refiner started from; the same as `images` for the DDPM."""
    latents: torch.Tensor
    """The prior's samples z (N, latent_dim); (N, 0) for the DDPM, whose start is seeded noise."""
    prompts: list[str]
    """The prompt of each image (each prompt repeated num_images times, in order)."""
    timings_ms: dict[str, float] = field(default_factory=dict)


def check_prompts(prompts: str | list[str], num_images: int) -> list[str]:
    """The prompts as a list, or PromptError naming what is wrong."""
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts:
        raise PromptError("no prompt given")
    for p in prompts:
        if not isinstance(p, str) or not p.strip():
            raise PromptError("a prompt is empty: describe a digit, e.g. 'a seven' or 'the digit 3'")
        if len(p) > MAX_PROMPT_CHARS:
            raise PromptError(f"a prompt has {len(p)} characters; at most {MAX_PROMPT_CHARS} are read")
    if not 1 <= num_images <= MAX_IMAGES or len(prompts) * num_images > MAX_IMAGES:
        raise PromptError(f"num_images must be 1..{MAX_IMAGES} and prompts x num_images at most {MAX_IMAGES}, "
                          f"got {len(prompts)} x {num_images}")
    return prompts


class TextToImagePipeline:
    """CLIP text encoder -> mixture prior -> VAE decoder -> GAN refiner, or CLIP text encoder -> text-conditioned
    DDPM (`diffusion`, a TextDiffusion). Every stage is also callable alone (`encode_prompts`, `sample_latents`,
    `decode`, `refine`, `diffuse`), which is how the Serve app splits it."""

    def __init__(self, clip, tokenizer, prior=None, vae=None, refiner=None, clip_model: str = "genlab-clip-rn",
                 device: str | torch.device = "cpu", diffusion=None):
        if (diffusion is None) == (prior is None or vae is None):
            raise ValueError("a pipeline generates with a prior and a VAE (+ refiner) or with a diffusion model")
        self.clip, self.tokenizer, self.clip_model = clip.eval(), tokenizer, clip_model
        self.prior = prior.eval() if prior is not None else None
        self.vae = vae.eval() if vae is not None else None
        self.refiner = refiner.eval() if refiner is not None else None  # a RefinerUNet
        self.diffusion = diffusion
        self.device = torch.device(device)

    @property
    def generator(self) -> str:
        return "diffusion" if self.diffusion is not None else "prior_vae"

    # -- stages ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        """Unit-norm CLIP text embeddings (P, D)."""
        return self.clip.encode_text(self.tokenizer(prompts).to(self.device), normalize=True)

    @torch.no_grad()
    def sample_latents(self, embeddings: torch.Tensor, num_images: int, seed: int,
                       temperature: float = DEFAULT_TEMPERATURE) -> torch.Tensor:
        """num_images latents per embedding (prompt-major order), reproducible from `seed`."""
        gen = torch.Generator(device=self.device).manual_seed(seed)
        return self.prior.sample(embeddings.repeat_interleave(num_images, 0), generator=gen, temperature=temperature)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(z)

    @torch.no_grad()
    def refine(self, raw: torch.Tensor, embeddings: torch.Tensor | None = None) -> torch.Tensor:
        """Refined images; a text-conditioned refiner also needs each image's prompt embedding (N, D)."""
        if self.refiner is None:
            return raw
        return (self.refiner(raw * 2 - 1, embeddings) + 1) / 2

    def diffuse(self, embeddings: torch.Tensor, num_images: int, seed: int, guidance: float | None = None,
                steps: int | None = None) -> torch.Tensor:
        """The DDPM's images, num_images per embedding (prompt-major), reproducible from `seed` (the start noise of
        every image of the call is drawn from it); guidance and steps default to the saved sampler's."""
        noise = self.diffusion.start_noise(len(embeddings) * num_images, seed)
        return self.diffusion.generate(embeddings.repeat_interleave(num_images, 0), noise, guidance, steps)

    # -- the call --------------------------------------------------------------------------------------------
    def __call__(self, prompts: str | list[str], num_images: int = 1, seed: int = 0,
                 temperature: float = DEFAULT_TEMPERATURE, refine: bool = True, guidance: float | None = None,
                 steps: int | None = None) -> PipelineOutput:
        """`temperature` and `refine` steer the prior chain; `guidance` and `steps` the DDPM."""
        prompts = check_prompts(prompts, num_images)
        times, t = {}, time.perf_counter()

        def lap(name):
            nonlocal t
            now = time.perf_counter()
            times[name] = (now - t) * 1e3
            t = now

        e = self.encode_prompts(prompts)
        lap("text_encoder")
        per_image = [p for p in prompts for _ in range(num_images)]
        if self.diffusion is not None:
            images = self.diffuse(e, num_images, seed, guidance, steps).cpu()
            lap("generator")
            return PipelineOutput(images, images, torch.zeros(len(images), 0), per_image, times)
        z = self.sample_latents(e, num_images, seed, temperature)
        lap("prior")
        raw = self.decode(z)
        lap("decoder")
        images = self.refine(raw, e.repeat_interleave(num_images, 0)) if refine else raw
        lap("refiner")
        return PipelineOutput(images.cpu(), raw.cpu(), z.cpu(), per_image, times)

    # -- saving and loading ----------------------------------------------------------------------------------
    def save_pretrained(self, out: str | Path, clip_weights: str | Path, vae_checkpoint: str | Path | None = None,
                        diffusion_checkpoint: str | Path | None = None) -> Path:
        """Write the pipeline directory: the CLIP weights file and the VAE checkpoint are copied as they are; of a
        DDPM checkpoint, its config and EMA weights (what it samples with)."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "clip").mkdir(exist_ok=True)
        shutil.copyfile(clip_weights, out / "clip" / "model.safetensors")
        if self.diffusion is not None:
            if diffusion_checkpoint is None:
                raise ValueError("a diffusion pipeline is saved from its DDPM checkpoint (diffusion_checkpoint)")
            (out / "diffusion").mkdir(exist_ok=True)  # the EMA weights: what the DDPM samples with
            shutil.copyfile(Path(diffusion_checkpoint) / "config.json", out / "diffusion" / "config.json")
            shutil.copyfile(Path(diffusion_checkpoint) / "ema.safetensors", out / "diffusion" / "model.safetensors")
            save_json({"format": FORMAT, "clip_model": self.clip_model, "generator": "diffusion", "refiner": False},
                      out / "pipeline.json")
            return out
        vae_out = out / "vae"
        vae_out.mkdir(exist_ok=True)
        for name in ("config.json", "model.safetensors"):
            shutil.copyfile(Path(vae_checkpoint) / name, vae_out / name)
        save_checkpoint(out / "prior", family="pipeline", model=self.prior,
                        config={"kind": "prior", "prior": to_dict(self.prior.cfg)})
        if self.refiner is not None:
            save_checkpoint(out / "refiner", family="pipeline", model=self.refiner,
                            config={"kind": "refiner_generator", "channels": self.refiner.channels,
                                    "embed_dim": self.refiner.embed_dim})
        save_json({"format": FORMAT, "clip_model": self.clip_model, "generator": "prior_vae",
                   "refiner": self.refiner is not None}, out / "pipeline.json")
        return out

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu") -> "TextToImagePipeline":
        from genlab.multimodal.models import create_clip

        path = Path(path)
        if not (path / "pipeline.json").exists():
            raise FileNotFoundError(f"{path} is not a pipeline directory (no pipeline.json); "
                                    "`python jobs/pipeline.py` writes one")
        meta = load_json(path / "pipeline.json")
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path}: pipeline format {meta.get('format')} is not {FORMAT}")
        clip, _, tokenizer = create_clip(meta["clip_model"], str(path / "clip" / "model.safetensors"), device)
        if meta.get("generator", "prior_vae") == "diffusion":
            from genlab.pipeline.text_diffusion import TextDiffusion

            return cls(clip, tokenizer, clip_model=meta["clip_model"], device=device,
                       diffusion=TextDiffusion.load(path / "diffusion", device=device))
        refiner = load_model(path / "refiner", device=device) if meta["refiner"] else None
        return cls(clip, tokenizer, load_model(path / "prior", device=device), load_model(path / "vae", device=device),
                   refiner, meta["clip_model"], device)
