"""Environment helpers: spaces check, vectorised envs with same-step autoreset, episode bookkeeping."""

from __future__ import annotations

import gymnasium as gym
import numpy as np


def env_dims(env_id: str) -> tuple[int, int]:
    """(observation size, number of actions); a clear error for spaces these agents do not handle."""
    try:
        env = gym.make(env_id)
    except gym.error.Error as e:
        raise ValueError(f"unknown gymnasium environment {env_id!r} ({e}); try CartPole-v1 or Acrobot-v1") from e
    obs_space, act_space = env.observation_space, env.action_space
    env.close()
    if not isinstance(act_space, gym.spaces.Discrete) or not isinstance(obs_space, gym.spaces.Box) \
            or len(obs_space.shape) != 1:
        raise ValueError(f"{env_id}: these agents need a flat Box observation and a Discrete action space, "
                         f"got {obs_space} / {act_space}")
    return int(obs_space.shape[0]), int(act_space.n)


def reward_threshold(env_id: str, threshold: float | None) -> float:
    if threshold is not None:
        return float(threshold)
    spec_threshold = gym.spec(env_id).reward_threshold
    if spec_threshold is None:
        raise ValueError(f"{env_id} has no reward_threshold; set --*.eval.threshold")
    return float(spec_threshold)


def make_vector_env(env_id: str, num_envs: int) -> gym.vector.VectorEnv:
    """Synchronous vector env whose done sub-envs reset in the same step; the true last observation of an
    episode is in info['final_obs'] (needed for the TD target of a truncated step)."""
    return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP})


def real_next_obs(next_obs: np.ndarray, done: np.ndarray, info: dict) -> np.ndarray:
    """s' of every transition: the reset observation is replaced by the episode's final one where done."""
    out = next_obs.copy()
    for i in np.flatnonzero(done):
        out[i] = info["final_obs"][i]
    return out


class EpisodeStats:
    """True (unshaped) return and length of every finished episode, with the env step it ended at."""

    def __init__(self, num_envs: int):
        self.returns = np.zeros(num_envs)
        self.lengths = np.zeros(num_envs, dtype=np.int64)
        self.episodes: list[dict] = []  # {"step", "return", "length"}

    def update(self, rewards: np.ndarray, done: np.ndarray, step: int) -> list[dict]:
        self.returns += rewards
        self.lengths += 1
        finished = []
        for i in np.flatnonzero(done):
            finished.append({"step": step, "return": float(self.returns[i]), "length": int(self.lengths[i])})
            self.returns[i], self.lengths[i] = 0.0, 0
        self.episodes += finished
        return finished
