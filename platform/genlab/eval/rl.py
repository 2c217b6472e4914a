"""One evaluator for every agent (ours and RLlib's): N episodes, each with its own env seed, true reward."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import gymnasium as gym
import numpy as np

Policy = Callable[[np.ndarray], np.ndarray]  # (B, obs_dim) float32 -> (B,) int actions


@dataclass
class EvalResult:
    returns: np.ndarray
    lengths: np.ndarray

    @property
    def mean(self) -> float:
        return float(self.returns.mean())

    @property
    def std(self) -> float:
        return float(self.returns.std())

    def as_dict(self, prefix: str = "eval/") -> dict:
        return {f"{prefix}return_mean": self.mean, f"{prefix}return_std": self.std,
                f"{prefix}return_min": float(self.returns.min()), f"{prefix}length_mean": float(self.lengths.mean()),
                f"{prefix}episodes": len(self.returns)}


def evaluate_policy(policy: Policy, env_id: str, episodes: int = 100, seed: int = 10_000,
                    parallel: int = 25) -> EvalResult:
    """Run `episodes` episodes; episode i resets its env with seed `seed + i`, so results do not depend on
    `parallel` (how many envs step together, one batched policy call per step)."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    returns, lengths = np.zeros(episodes), np.zeros(episodes, dtype=np.int64)
    for start in range(0, episodes, parallel):
        ids = list(range(start, min(start + parallel, episodes)))
        envs = [gym.make(env_id) for _ in ids]
        obs = np.stack([env.reset(seed=seed + i)[0] for env, i in zip(envs, ids)]).astype(np.float32)
        alive = np.ones(len(ids), dtype=bool)
        while alive.any():
            actions = np.asarray(policy(obs[alive]))
            for j, a in zip(np.flatnonzero(alive), actions):
                o, r, terminated, truncated, _ = envs[j].step(int(a))
                obs[j] = o
                returns[ids[j]] += r
                lengths[ids[j]] += 1
                if terminated or truncated:
                    alive[j] = False
        for env in envs:
            env.close()
    return EvalResult(returns, lengths)
