"""Learning curves (one run; mean +- std over seeds) and an episode GIF rendered with render_mode='rgb_array'."""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium as gym
import numpy as np
from PIL import Image

from genlab.core.plotting import _save, subplots
from genlab.eval.rl import Policy

SDL_HEADLESS = {"SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy", "PYGAME_HIDE_SUPPORT_PROMPT": "1"}


def learning_curve(episodes: list[dict], curve: list[tuple[int, float]], evals: list[dict], threshold: float,
                   path: str | Path, title: str = "") -> Path:
    """Return vs env steps: each episode (faint), the 100-episode rolling mean, greedy evaluation screens."""
    fig, ax = subplots(figsize=(7, 4))
    if episodes:
        ax.scatter([e["step"] for e in episodes], [e["return"] for e in episodes], s=2, alpha=0.25,
                   color="tab:blue", label="training episode (true reward)")
    if curve:
        ax.plot([c[0] for c in curve], [c[1] for c in curve], color="tab:blue", label="rolling mean (100 episodes)")
    if evals:
        ax.plot([e["step"] for e in evals], [e["eval/screen_return_mean"] for e in evals], "o-", ms=3,
                color="tab:orange", label="greedy evaluation")
    ax.axhline(threshold, ls="--", color="gray", lw=1, label=f"threshold {threshold:g}")
    ax.set(xlabel="env steps", ylabel="return", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def seed_curves(curves: dict[str, list[dict]], threshold: float | None, path: str | Path, title: str = "") -> Path:
    """One line per agent: mean +- std over seeds of the rolling return on a shared env-step grid.
    `curves[agent]` is a list of {"steps": [...], "return": [... or None]} (one per seed)."""
    fig, ax = subplots(figsize=(8, 4.5))
    for name, runs in curves.items():
        steps = np.asarray(runs[0]["steps"], dtype=float)
        values = np.array([[np.nan if v is None else v for v in run["return"]] for run in runs], dtype=float)
        have = ~np.isnan(values).all(0)
        with np.errstate(all="ignore"):
            mean, std = np.nanmean(values[:, have], 0), np.nanstd(values[:, have], 0)
        line, = ax.plot(steps[have], mean, label=f"{name} ({len(runs)} seed{'s' * (len(runs) > 1)})")
        ax.fill_between(steps[have], mean - std, mean + std, color=line.get_color(), alpha=0.2)
    if threshold is not None:
        ax.axhline(threshold, ls="--", color="gray", lw=1, label=f"threshold {threshold:g}")
    ax.set(xlabel="env steps", ylabel="return (100-episode rolling mean)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def record_gif(policy: Policy, env_id: str, seed: int, path: str | Path, frame_skip: int = 2,
               scale: float = 0.5, fps: int = 25, max_steps: int = 1000) -> Path:
    """Render one greedy episode to a GIF (every `frame_skip`-th frame, downscaled)."""
    for key, value in SDL_HEADLESS.items():  # pygame draws off-screen; no display or sound card needed
        os.environ.setdefault(key, value)
    env = gym.make(env_id, render_mode="rgb_array")
    obs, _ = env.reset(seed=seed)
    frames, t, done = [], 0, False
    while not done and t < max_steps:
        if t % frame_skip == 0:
            frames.append(env.render())
        obs, _, terminated, truncated, _ = env.step(int(policy(obs[None].astype(np.float32))[0]))
        done, t = terminated or truncated, t + 1
    frames.append(env.render())
    env.close()
    images = [Image.fromarray(f).resize((int(f.shape[1] * scale), int(f.shape[0] * scale))) for f in frames]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 * frame_skip / fps), loop=0,
                   optimize=True)
    return path
