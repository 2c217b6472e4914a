"""The noise schedule: one object shared by the training loss (q_sample) and every sampler's step.

Conventions follow Ho et al. 2020 (DDPM) and Song et al. 2021 (DDIM); step() formulas match diffusers'
DDPMScheduler (variance "fixed_small") and DDIMScheduler (tests check both to 1e-5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

SCHEDULES = ("linear", "cosine")


@dataclass
class ScheduleConfig:
    kind: str = "linear"
    """'linear' (DDPM: beta from beta_start to beta_end) or 'cosine' (Nichol & Dhariwal 2021)."""
    timesteps: int = 1000
    """T, the number of diffusion steps of training and of ancestral sampling."""
    beta_start: float = 1e-4
    """Linear schedule: beta_1."""
    beta_end: float = 0.02
    """Linear schedule: beta_T."""

    def __post_init__(self):
        if self.kind not in SCHEDULES:
            raise ValueError(f"schedule kind must be one of {SCHEDULES}, got {self.kind!r}")
        if self.timesteps < 2:
            raise ValueError(f"timesteps must be >= 2, got {self.timesteps}")
        if not 0 < self.beta_start < self.beta_end < 1:
            raise ValueError(f"need 0 < beta_start < beta_end < 1, got {self.beta_start}, {self.beta_end}")


def cosine_betas(timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """betas from alpha_bar(t) = cos^2((t/T + s) / (1 + s) * pi/2), each clipped at max_beta."""
    f = lambda t: math.cos((t / timesteps + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    return torch.tensor([min(1 - f(i + 1) / f(i), max_beta) for i in range(timesteps)], dtype=torch.float64)


class NoiseSchedule:
    """Per-timestep constants (float32) with the forward process and the reverse steps built on them."""

    def __init__(self, cfg: ScheduleConfig = ScheduleConfig()):
        self.cfg = cfg
        self.T = cfg.timesteps
        if cfg.kind == "linear":
            betas = torch.linspace(cfg.beta_start, cfg.beta_end, cfg.timesteps, dtype=torch.float32)
        else:
            betas = cosine_betas(cfg.timesteps).float()
        # float32 cumprod, as diffusers does: near t = T, x_0 = (x_t - sqrt(1 - ab) eps) / sqrt(ab) amplifies
        # any difference in alpha_bar, so matching the reference's rounding is what makes steps agree to 1e-5
        self.betas = betas
        self.alphas_cumprod = torch.cumprod(1 - betas, 0)

    def alpha_bar(self, t: torch.Tensor | int) -> torch.Tensor:
        """alpha_bar_t; t = -1 means 'before the first step' (alpha_bar = 1)."""
        t = torch.as_tensor(t)
        return torch.where(t >= 0, self.alphas_cumprod[t.clamp(min=0)], torch.ones(()))

    @staticmethod
    def _bcast(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return v.to(x.device, x.dtype).reshape(-1, *([1] * (x.dim() - 1)))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t ~ q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I); t: (B,) ints in [0, T)."""
        ab = self._bcast(self.alphas_cumprod[t.cpu()], x0)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def snr(self, t: torch.Tensor) -> torch.Tensor:
        ab = self.alphas_cumprod[t]
        return ab / (1 - ab)

    def predict_x0(self, xt: torch.Tensor, t: int, eps: torch.Tensor) -> torch.Tensor:
        ab = self.alphas_cumprod[t]
        return (xt - (1 - ab).sqrt() * eps) / ab.sqrt()

    def ddpm_step(self, xt: torch.Tensor, t: int, eps: torch.Tensor, noise: torch.Tensor | None,
                  clip_x0: bool = True) -> torch.Tensor:
        """One ancestral step x_t -> x_{t-1}: posterior mean from the predicted x_0, variance beta_tilde_t."""
        ab, ab_prev = self.alpha_bar(t), self.alpha_bar(t - 1)
        alpha_t = ab / ab_prev
        beta_t = 1 - alpha_t
        x0 = self.predict_x0(xt, t, eps)
        if clip_x0:
            x0 = x0.clamp(-1, 1)
        mean = (ab_prev.sqrt() * beta_t / (1 - ab)) * x0 + (alpha_t.sqrt() * (1 - ab_prev) / (1 - ab)) * xt
        if t == 0:
            return mean
        variance = ((1 - ab_prev) / (1 - ab) * beta_t).clamp(min=1e-20)
        return mean + variance.sqrt() * noise

    def ddim_step(self, xt: torch.Tensor, t: int, t_prev: int, eps: torch.Tensor, eta: float = 0.0,
                  noise: torch.Tensor | None = None, clip_x0: bool = True,
                  clipped_eps: bool = False) -> torch.Tensor:
        """One DDIM step x_t -> x_{t_prev} (t_prev = -1 lands on x_0); eta=0 deterministic, eta=1 DDPM-like.

        clipped_eps re-derives eps from the clipped x_0 (diffusers' use_clipped_model_output), so that the
        step's x_0 and noise direction agree; without it, a clipped x_0 and a large guided eps disagree and
        guided samples drift off the data."""
        ab, ab_prev = self.alpha_bar(t), self.alpha_bar(t_prev)
        x0 = self.predict_x0(xt, t, eps)
        if clip_x0:
            x0 = x0.clamp(-1, 1)
            if clipped_eps:
                eps = (xt - ab.sqrt() * x0) / (1 - ab).sqrt()
        sigma = eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)).sqrt()
        out = ab_prev.sqrt() * x0 + (1 - ab_prev - sigma ** 2).sqrt() * eps
        if eta > 0:
            out = out + sigma * noise
        return out

    def ddim_timesteps(self, steps: int, spacing: str = "leading") -> list[int]:
        """`steps` timesteps, descending. 'leading' (the DDIM paper's): [T - T//steps, ..., T//steps, 0];
        'trailing' (Lin et al. 2024, Table 2): [T-1, ..., T/steps - 1], which starts from the last timestep, the
        only one whose x_t is (almost) pure noise, as sampling starts."""
        if not 1 <= steps <= self.T:
            raise ValueError(f"sampler steps must be in [1, {self.T}], got {steps}")
        if spacing == "leading":
            stride = self.T // steps
            return [i * stride for i in range(steps)][::-1]
        if spacing == "trailing":
            return [int(t) - 1 for t in np.arange(self.T, 0, -self.T / steps).round()]
        raise ValueError(f"timestep spacing must be 'leading' or 'trailing', got {spacing!r}")

    # -- DPM-Solver++ (Lu et al. 2022), in the variance-exploding view sigma_t = sqrt((1 - ab_t) / ab_t) ------------
    def ve_sigma(self, t: int) -> torch.Tensor:
        """sigma_t of x_t / sqrt(ab_t) = x_0 + sigma_t eps; t = -1 (after the last step) is 0."""
        if t < 0:
            return torch.zeros(())
        ab = self.alphas_cumprod[t]
        return ((1 - ab) / ab) ** 0.5

    def dpm_x0(self, xt: torch.Tensor, t: int, eps: torch.Tensor) -> torch.Tensor:
        """x_0 = (x_t - sigma_t eps) / alpha_t with alpha_t, sigma_t from the VE sigma, the way DPM-Solver++ (and
        diffusers) computes it: near t = T of a cosine schedule x_0 amplifies eps ~1e4-fold, so the rounding path
        matters for step-by-step agreement."""
        alpha, sigma, _ = self._alpha_sigma_lambda(self.ve_sigma(t))
        return (xt - sigma * eps) / alpha

    @staticmethod
    def _alpha_sigma_lambda(ve_sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        alpha = 1 / (ve_sigma ** 2 + 1) ** 0.5
        sigma = ve_sigma * alpha
        return alpha, sigma, torch.log(alpha) - torch.log(sigma)  # lambda = log-SNR / 2 (inf at sigma = 0)

    def dpmpp_2m_step(self, xt: torch.Tensor, t: int, t_next: int, x0: torch.Tensor,
                      prev: tuple[torch.Tensor, int] | None = None) -> torch.Tensor:
        """One DPM-Solver++(2M) step x_t -> x_{t_next} from the data prediction x0 (t_next = -1 lands on x_0).

        1. first order (DDIM in x0 form): x_next = (s_next / s_t) x_t - a_next (e^{-h} - 1) x0,
           h = lambda_next - lambda_t (Lu et al. 2022, eq. 5 of DPM-Solver++);
        2. with the previous step's (x0_prev, t_prev): the multistep midpoint correction
           - 0.5 a_next (e^{-h} - 1) D1, D1 = (x0 - x0_prev) / r, r = (lambda_t - lambda_prev) / h (their Alg. 2)."""
        a_n, s_n, l_n = self._alpha_sigma_lambda(self.ve_sigma(t_next))
        _, s_t, l_t = self._alpha_sigma_lambda(self.ve_sigma(t))
        h = l_n - l_t
        out = (s_n / s_t) * xt - (a_n * (torch.exp(-h) - 1.0)) * x0
        if prev is None:
            return out
        x0_prev, t_prev = prev
        _, _, l_p = self._alpha_sigma_lambda(self.ve_sigma(t_prev))
        r0 = (l_t - l_p) / h
        d1 = (1.0 / r0) * (x0 - x0_prev)
        return out - 0.5 * (a_n * (torch.exp(-h) - 1.0)) * d1
