"""The text-to-image pipeline's stages as Ray Serve deployments (the search app's ingress composes them):

    POST /api/generate -> TextEncoder (the search app's, batched) -> PriorStage -> ImageGenerator (VAE decoder +
    GAN refiner, batched with @serve.batch, autoscaled) -> raw and refined PNGs, stage timings
    (a text-conditioned DDPM pipeline: TextEncoder -> DiffusionGenerator, batched and autoscaled alike)
    (the caption world's CaptionDiffusionPipeline: CaptionGenerator alone, which reads the prompt itself: its
    token encoder is part of the model)

Each replica loads its stage from a pipeline directory through genlab.pipeline's own classes (only they know the
format); CaptionGenerator calls the CaptionDiffusionPipeline object itself, so the app draws what the pipeline
draws for the same prompt and seed.
"""

from __future__ import annotations

import base64
import time

import numpy as np
from pydantic import BaseModel, Field
from ray import serve

from genlab.pipeline.pipeline import DEFAULT_TEMPERATURE, MAX_PROMPT_CHARS
from genlab.serve.media import png_bytes

MAX_SERVED_IMAGES = 16  # per request: the page shows at most this many; bigger batches are jobs/pipeline.py's
MAX_SEED = 2**31 - 1


def _threads() -> None:
    import torch

    torch.set_num_threads(1)  # several replicas share the cores


def _pipeline(pipeline_dir: str):
    """The pipeline object every stage replica wraps (its CLIP is loaded too: a few MB for ours)."""
    from genlab.pipeline import TextToImagePipeline

    _threads()
    return TextToImagePipeline.from_pretrained(pipeline_dir)


@serve.deployment(ray_actor_options={"num_cpus": 0.2}, max_ongoing_requests=64)
class PriorStage:
    """The pipeline's `sample_latents` for a prompt's CLIP embedding; each request's samples depend on its seed
    only."""

    def __init__(self, pipeline_dir: str):
        self.pipe = _pipeline(pipeline_dir)

    async def sample(self, embedding: np.ndarray, num_images: int, seed: int, temperature: float) -> np.ndarray:
        import torch

        e = torch.from_numpy(np.ascontiguousarray(embedding, np.float32))[None]
        return self.pipe.sample_latents(e, num_images, seed, temperature).numpy()


@serve.deployment(ray_actor_options={"num_cpus": 0.2}, max_ongoing_requests=64,
                  autoscaling_config={"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 8,
                                      "upscale_delay_s": 5, "downscale_delay_s": 60})
class ImageGenerator:
    """The pipeline's `decode` and `refine`: latents (and their prompt's embedding) -> (raw decodes, refined
    images) as uint8 (N, 28, 28). Concurrent requests are decoded as one batch; results do not depend on what they
    are batched with (eval mode, per-image normalisation)."""

    def __init__(self, pipeline_dir: str, batching: bool = True):
        self.pipe = _pipeline(pipeline_dir)
        self.batching = batching

    def _generate(self, z: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Latents (N, latent_dim) and each one's prompt embedding (N, D) -> (raw, refined) uint8 images."""
        import torch

        raw = self.pipe.decode(torch.from_numpy(z))
        refined = self.pipe.refine(raw, torch.from_numpy(e))
        to_u8 = lambda x: (x[:, 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()  # noqa: E731
        return to_u8(raw), to_u8(refined)

    @staticmethod
    def _with_embeddings(latents: np.ndarray, embedding: np.ndarray) -> np.ndarray:
        return np.repeat(np.asarray(embedding, np.float32)[None], len(latents), 0)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.002)
    async def _batched(self, requests: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[np.ndarray, np.ndarray]]:
        latents = [z for z, _ in requests]
        embeddings = [self._with_embeddings(z, e) for z, e in requests]
        raw, refined = self._generate(np.concatenate(latents), np.concatenate(embeddings))
        bounds = np.cumsum([0] + [len(z) for z in latents])
        return [(raw[a:b], refined[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]

    async def generate(self, latents: np.ndarray, embedding: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One request's latents and its prompt's embedding (D,) (a text-conditioned refiner reads it)."""
        if self.batching:
            return await self._batched((latents, embedding))
        return self._generate(latents, self._with_embeddings(latents, embedding))


@serve.deployment(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=64,
                  autoscaling_config={"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 8,
                                      "upscale_delay_s": 5, "downscale_delay_s": 60})
class DiffusionGenerator:
    """The pipeline's text-conditioned DDPM (its `diffusion` stage): a prompt's embedding, num_images, seed (and
    guidance) -> uint8 images (N, 28, 28), the same as the pipeline's for that prompt and seed. Concurrent requests
    with the same guidance are denoised as one batch (each image depends on its own start noise alone)."""

    def __init__(self, pipeline_dir: str, batching: bool = True):
        self.model = _pipeline(pipeline_dir).diffusion
        self.batching = batching

    def _generate(self, requests: list[tuple[np.ndarray, int, int, float | None]]) -> list[np.ndarray]:
        import torch

        e = torch.cat([torch.from_numpy(np.asarray(emb, np.float32))[None].repeat(n, 1) for emb, n, _, _ in requests])
        noise = torch.cat([self.model.start_noise(n, seed) for _, n, seed, _ in requests])
        images = (self.model.generate(e, noise, requests[0][3])[:, 0] * 255).round().to(torch.uint8).numpy()
        bounds = np.cumsum([0] + [n for _, n, _, _ in requests])
        return [images[a:b] for a, b in zip(bounds[:-1], bounds[1:])]

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.002)
    async def _batched(self, requests: list[tuple]) -> list[np.ndarray]:
        out = [None] * len(requests)
        for guidance in {r[3] for r in requests}:  # one sampler run per guidance scale in the batch
            idx = [i for i, r in enumerate(requests) if r[3] == guidance]
            for i, images in zip(idx, self._generate([requests[i] for i in idx])):
                out[i] = images
        return out

    async def generate(self, embedding: np.ndarray, num_images: int, seed: int,
                       guidance: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(images, images): the DDPM has no raw stage; the pair keeps the prior chain's response shape."""
        request = (embedding, num_images, seed, guidance)
        images = await self._batched(request) if self.batching else self._generate([request])[0]
        return images, images


@serve.deployment(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=16,
                  autoscaling_config={"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 4,
                                      "upscale_delay_s": 5, "downscale_delay_s": 60})
class CaptionGenerator:
    """The caption world's pipeline (genlab.pipeline.caption_pipeline): prompt, num_images, seed, guidance ->
    uint8 RGB images (N, 32, 32, 3). Requests are not batched together: each one's images come from its own
    seed, exactly as the pipeline's call gives them."""

    def __init__(self, pipeline_dir: str):
        from genlab.pipeline.caption_pipeline import CaptionDiffusionPipeline

        _threads()
        self.pipe = CaptionDiffusionPipeline.from_pretrained(pipeline_dir)

    async def generate_prompt(self, prompt: str, num_images: int, seed: int,
                              guidance: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        import asyncio

        import torch

        out = await asyncio.to_thread(self.pipe, prompt, num_images, seed, guidance)  # the loop stays free
        images = (out.images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        return images, images


class GenerateRequest(BaseModel):
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS, description="what to draw, e.g. 'a seven'")
    num_images: int = Field(4, ge=1, le=MAX_SERVED_IMAGES, description=f"images (1..{MAX_SERVED_IMAGES})")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="same prompt + seed = same images")
    temperature: float = Field(DEFAULT_TEMPERATURE, ge=0.0, le=2.0,
                               description="scale of the prior's noise (0: most typical, 1: the fitted prior)")
    guidance: float | None = Field(None, ge=0.0, le=20.0, description="classifier-free guidance scale of a DDPM "
                                   "pipeline (default: the one it was saved with); the prior chain ignores it")


class GenerateResponse(BaseModel):
    prompt: str
    generator: str = Field(description="'prior_vae' (prior -> VAE decoder -> refiner), 'diffusion' (DDPM) or "
                                       "'caption_diffusion' (the caption world's 32x32 RGB model)")
    seed: int
    num_images: int
    temperature: float
    timings_ms: dict[str, float]
    images: list[str] = Field(description="refined images, PNG data URLs")
    raw: list[str] = Field(description="the VAE decodes they were refined from, PNG data URLs (the DDPM: its "
                                       "images again)")


def data_url(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode()


def grid(rows: list[np.ndarray], pad: int = 2) -> np.ndarray:
    """uint8 image rows (each (N, H, W) grey or (N, H, W, 3) RGB) -> one (R*(H+pad)+pad, N*(W+pad)+pad[, 3])
    image on a white background."""
    n, h, w = rows[0].shape[:3]
    out = np.full((len(rows) * (h + pad) + pad, n * (w + pad) + pad, *rows[0].shape[3:]), 255, np.uint8)
    for r, row in enumerate(rows):
        for i, image in enumerate(row):
            y, x = pad + r * (h + pad), pad + i * (w + pad)
            out[y:y + h, x:x + w] = image
    return out


async def run_pipeline(text, prior, generator, req: GenerateRequest, kind: str = "prior_vae") -> dict:
    """The stages through their handles (no prior: the DDPM generator reads the embedding itself; a caption
    pipeline reads the prompt itself); returns the response dict (images as uint8 arrays)."""
    t0 = time.perf_counter()
    if kind == "caption_diffusion":
        images, _ = await generator.generate_prompt.remote(req.prompt.strip(), req.num_images, req.seed, req.guidance)
        took = round((time.perf_counter() - t0) * 1e3, 2)
        return {"prompt": req.prompt, "generator": kind, "seed": req.seed, "num_images": req.num_images,
                "temperature": req.temperature, "timings_ms": {"generator": took, "total": took},
                "raw_arrays": images, "refined_arrays": images}
    embedding = await text.encode.remote(req.prompt.strip())
    t1 = time.perf_counter()
    times, t2 = {"text_encoder": (t1 - t0) * 1e3}, t1
    if prior is None:
        raw, refined = await generator.generate.remote(embedding, req.num_images, req.seed, req.guidance)
    else:
        latents = await prior.sample.remote(embedding, req.num_images, req.seed, req.temperature)
        t2 = time.perf_counter()
        times["prior"] = (t2 - t1) * 1e3
        raw, refined = await generator.generate.remote(latents, embedding)
    t3 = time.perf_counter()
    times |= {"generator": (t3 - t2) * 1e3, "total": (t3 - t0) * 1e3}
    return {"prompt": req.prompt, "generator": "prior_vae" if prior is not None else "diffusion", "seed": req.seed,
            "num_images": req.num_images, "temperature": req.temperature,
            "timings_ms": {k: round(v, 2) for k, v in times.items()}, "raw_arrays": raw, "refined_arrays": refined}
