"""VAE likelihood on binarised images: negative ELBO and the importance-weighted NLL bound (Burda et al. 2016).

log p(x) >= log (1/k) sum_i p(x, z_i) / q(z_i | x),  z_i ~ q(z | x); the bound tightens as k grows, and k=1000
is the usual reporting value. Both are in nats per image.
"""

from __future__ import annotations

import math

import torch

from genlab.autoencoders.losses import bce_sum, kl_standard_normal
from genlab.eval.reconstruction import to_float

LOG_2PI = math.log(2 * math.pi)


def binarize(images: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Dynamic binarisation: each pixel ~ Bernoulli(intensity). Seeded, so a test set is fixed once drawn."""
    x = to_float(images)
    return torch.bernoulli(x, generator=torch.Generator().manual_seed(seed))


def _log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)


@torch.no_grad()
def iwae_log_likelihood(vae, x: torch.Tensor, k: int, chunk: int = 250) -> torch.Tensor:
    """Importance-weighted estimate of log p(x) per image, (B,), with k samples from q(z|x)."""
    mu, logvar = vae.encode(x)                               # (B, d)
    log_w = []
    for start in range(0, k, chunk):
        kk = min(chunk, k - start)
        eps = torch.randn(kk, *mu.shape, device=mu.device)  # (kk, B, d)
        z = mu + torch.exp(0.5 * logvar) * eps
        logits = vae.decoder(z.flatten(0, 1))                 # (kk*B, 1, 28, 28)
        log_px_z = -bce_sum(logits, x.repeat(kk, 1, 1, 1)).view(kk, -1)
        log_pz = -0.5 * (LOG_2PI + z.pow(2)).sum(-1)
        log_qz = _log_normal(z, mu, logvar)
        log_w.append(log_px_z + log_pz - log_qz)            # (kk, B)
    return torch.logsumexp(torch.cat(log_w), dim=0) - math.log(k)


@torch.no_grad()
def vae_test_metrics(vae, binary_images: torch.Tensor, k: int = 1000, batch_size: int = 100,
                     device: str | torch.device = "cpu", progress: bool = False) -> dict[str, float]:
    """Negative ELBO and IW-NLL (nats/image) of binarised images (B, 1, 28, 28) in {0, 1}."""
    vae.eval()
    neg_elbo, nll, n = 0.0, 0.0, 0
    starts = range(0, len(binary_images), batch_size)
    if progress:
        from tqdm.auto import tqdm
        starts = tqdm(starts, desc=f"IW-NLL k={k}")
    for start in starts:
        x = binary_images[start:start + batch_size].to(device)
        logits, mu, logvar = vae(x)
        neg_elbo += (bce_sum(logits, x) + kl_standard_normal(mu, logvar)).sum().item()
        nll -= iwae_log_likelihood(vae, x, k).sum().item()
        n += len(x)
    return {"neg_elbo_nats": neg_elbo / n, "iw_nll_nats": nll / n, "iw_k": k, "n_images": n}
