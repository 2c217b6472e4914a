"""Uniform experience replay on preallocated numpy arrays (a ring buffer, not a deque of tuples)."""

from __future__ import annotations

import numpy as np
import torch


class ReplayBuffer:
    """Stores (s, a, r, s', terminated). `terminated` only: a time-limit truncation is not terminal, so its
    transition still bootstraps from s' (Pardo et al. 2018)."""

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], obs_dtype=np.float32):
        if capacity < 1:
            raise ValueError(f"replay capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.obs = np.zeros((capacity, *obs_shape), dtype=obs_dtype)
        self.next_obs = np.zeros((capacity, *obs_shape), dtype=obs_dtype)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self.pos = 0   # next slot to write
        self.size = 0  # filled slots

    def __len__(self) -> int:
        return self.size

    def add(self, obs, actions, rewards, next_obs, terminated) -> None:
        """Add a batch of transitions (leading dim = number of envs); the oldest are overwritten when full."""
        actions = np.asarray(actions)
        n = len(actions)
        idx = (self.pos + np.arange(n)) % self.capacity
        self.obs[idx] = obs
        self.next_obs[idx] = next_obs
        self.actions[idx] = actions
        self.rewards[idx] = rewards
        self.terminated[idx] = terminated
        self.pos = int((self.pos + n) % self.capacity)
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """A uniform batch (with replacement) as torch tensors."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = rng.integers(0, self.size, size=batch_size)
        return {"obs": torch.from_numpy(self.obs[idx]), "actions": torch.from_numpy(self.actions[idx]),
                "rewards": torch.from_numpy(self.rewards[idx]), "next_obs": torch.from_numpy(self.next_obs[idx]),
                "terminated": torch.from_numpy(self.terminated[idx])}
