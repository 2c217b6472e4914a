"""Figures of a pipeline run: raw decodes beside refined images per prompt, and one prompt's variety."""

from __future__ import annotations

from pathlib import Path

from genlab.core.plotting import save_image_grid, save_rows
from genlab.pipeline.pipeline import DEFAULT_TEMPERATURE, TextToImagePipeline
from genlab.pipeline.prompts import digit_prompts


def write_figures(pipe: TextToImagePipeline, out_dir: Path, seed: int = 0,
                  temperature: float = DEFAULT_TEMPERATURE) -> list[Path]:
    prompts = [pool[0] for pool in digit_prompts("heldout")]
    out = pipe(prompts, num_images=1, seed=seed, temperature=temperature)
    title = "held-out prompts: " + " | ".join(p for p in prompts[:3]) + " | ..."
    if pipe.generator == "diffusion":  # no raw stage: one row
        paths = [save_rows([out.images], [f"DDPM, guidance {pipe.diffusion.sampler.guidance:g}"],
                           out_dir / "prompts_ddpm.png", title=title)]
    else:
        paths = [save_rows([out.raw, out.images], ["VAE decode", "refined"], out_dir / "raw_vs_refined.png",
                           title=title)]
    prompt = prompts[7]
    many = pipe(prompt, num_images=64, seed=seed, temperature=temperature)
    paths.append(save_image_grid(many.images, out_dir / "one_prompt_64_images.png", nrow=8,
                                 title=f"'{prompt}', 64 samples"))
    return paths
