"""The chapter's figures for one trained autoencoder or VAE, written into a run directory."""

from __future__ import annotations

from pathlib import Path

import torch

from genlab.autoencoders.losses import add_gaussian_noise
from genlab.autoencoders.models import VAE, interpolate
from genlab.core.plotting import pca_2d, plot_curves, save_image_grid, save_rows, scatter_2d
from genlab.core.rundir import read_metrics
from genlab.eval.reconstruction import to_float


def encode_mean(model, x: torch.Tensor) -> torch.Tensor:
    """The code of x: z for an autoencoder, the posterior mean for a VAE."""
    return model.encode(x)[0] if isinstance(model, VAE) else model.encode(x)


@torch.no_grad()
def write_figures(cfg, model, test: tuple[torch.Tensor, torch.Tensor], run_dir: str | Path,
                  n_latent: int = 5000) -> list[Path]:
    model.eval()
    run_dir = Path(run_dir)
    device = next(model.parameters()).device
    images, labels = test
    x = to_float(images[:10]).to(device)
    paths = []
    name = f"{cfg.model.arch} {cfg.model.kind}" + (f" ({cfg.objective})" if cfg.model.kind == "ae" else
                                                   f" (beta={cfg.beta:g})")
    recon = model.decode(encode_mean(model, x))
    paths.append(save_rows([x, recon], ["original", "reconstruction"], run_dir / "reconstructions.png", name))
    if cfg.model.kind == "ae" and cfg.objective == "denoising":
        noisy = add_gaussian_noise(x, cfg.noise_factor, generator=torch.Generator(device=device).manual_seed(0))
        paths.append(save_rows([noisy, model.decode(model.encode(noisy)), x], ["noisy", "denoised", "clean"],
                               run_dir / "denoising.png", f"{name}, noise factor {cfg.noise_factor}"))
    z = torch.cat([encode_mean(model, to_float(images[s:s + 1000]).to(device)) for s in range(0, n_latent, 1000)])
    method = "PCA of " if z.shape[1] > 2 else ""
    paths.append(scatter_2d(pca_2d(z.cpu()), labels[:len(z)], run_dir / "latent_map.png",
                            f"{method}test-set codes (d={z.shape[1]}), {name}"))
    if isinstance(model, VAE):
        samples = model.sample(100, generator=torch.Generator().manual_seed(cfg.seed))
        paths.append(save_image_grid(samples, run_dir / "prior_samples.png", nrow=10, title=f"prior samples, {name}"))
    pairs = [(0, 1), (2, 3), (4, 5), (6, 7)]
    strips = [interpolate(model, to_float(images[a:a + 1]).to(device)[0], to_float(images[b:b + 1]).to(device)[0])
              for a, b in pairs]
    paths.append(save_rows(strips, [f"{int(labels[a])} -> {int(labels[b])}" for a, b in pairs],
                           run_dir / "interpolation.png", f"latent interpolation, {name}"))
    records = read_metrics(run_dir / "metrics.jsonl")
    if records:
        keys = ["train/loss", "eval/mse", "eval/psnr_db", "eval/neg_elbo_nats", "eval/psnr_gain_db"]
        paths.append(plot_curves(records, keys, run_dir / "curves.png", x="epoch", title=name))
    return paths
