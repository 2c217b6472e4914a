"""DQN (Mnih et al. 2015) as in the seed, done properly: numpy replay, target network, linear epsilon, Huber
loss, gradient clipping; Double DQN and vectorised environments as options. Pure torch + gymnasium."""

from __future__ import annotations

import copy
import logging
import math
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from genlab.core.seeding import seed_everything
from genlab.rl.buffer import ReplayBuffer
from genlab.rl.checkpoint import save_agent
from genlab.rl.config import DQNConfig
from genlab.rl.envs import EpisodeStats, env_dims, make_vector_env, real_next_obs
from genlab.rl.networks import mlp
from genlab.rl.results import RunRecorder

log = logging.getLogger(__name__)


class DQNAgent(nn.Module):
    """Q(s, .) from an MLP; acting is greedy (evaluation) or epsilon-greedy (training, in the loop)."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: tuple[int, ...] = (256, 256)):
        super().__init__()
        self.q = mlp([obs_dim, *hidden, n_actions])

    @classmethod
    def from_config(cls, cfg: DQNConfig) -> "DQNAgent":
        return cls(*env_dims(cfg.env_id), cfg.hidden)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:  # (B, obs_dim) -> (B, n_actions)
        return self.q(obs)

    @torch.no_grad()
    def act(self, obs: np.ndarray, greedy: bool = True) -> np.ndarray:
        """Greedy actions; DQN has no stochastic policy of its own (`greedy=False` is accepted and ignored)."""
        return self.q(torch.as_tensor(obs, dtype=torch.float32)).argmax(1).numpy()


def linear_epsilon(step: int, cfg: DQNConfig) -> float:
    duration = max(cfg.eps_fraction * cfg.total_env_steps, 1.0)
    return cfg.eps_start + min(step / duration, 1.0) * (cfg.eps_end - cfg.eps_start)


# ALGO LOGIC: the TD target
def td_target(rewards: torch.Tensor, next_obs: torch.Tensor, terminated: torch.Tensor, gamma: float,
              target_q: nn.Module, online_q: nn.Module | None = None) -> torch.Tensor:
    """y = r + gamma * (1 - terminated) * Q_target(s', a'), a' = argmax_a Q_target(s', a) (DQN) or
    argmax_a Q_online(s', a) (Double DQN). Only termination stops bootstrapping; truncation does not."""
    with torch.no_grad():
        next_q = target_q(next_obs)  # (B, A)
        if online_q is None:
            next_v = next_q.max(dim=1).values
        else:
            best = online_q(next_obs).argmax(dim=1, keepdim=True)
            next_v = next_q.gather(1, best).squeeze(1)
        return rewards + gamma * (1.0 - terminated) * next_v


def dqn_update(agent: DQNAgent, target: nn.Module, optimizer: torch.optim.Optimizer, batch: dict,
               cfg: DQNConfig) -> tuple[float, float]:
    """One gradient step on the Huber TD loss; returns (loss, mean Q of the taken actions)."""
    y = td_target(batch["rewards"], batch["next_obs"], batch["terminated"], cfg.gamma, target,
                  agent.q if cfg.double_dqn else None)
    q = agent(batch["obs"]).gather(1, batch["actions"][:, None]).squeeze(1)
    loss = F.huber_loss(q, y, delta=cfg.huber_delta)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(agent.parameters(), cfg.max_grad_norm)
    optimizer.step()
    return loss.item(), q.mean().item()


@torch.no_grad()
def update_target(target: nn.Module, online: nn.Module, tau: float) -> None:
    for t, o in zip(target.parameters(), online.parameters()):
        t.lerp_(o, tau)  # tau = 1: hard copy
# END ALGO LOGIC


def train_dqn(cfg: DQNConfig, run_dir: str | Path | None = None,
              report: Callable[[dict], None] | None = None) -> dict:
    """Train; score with the shared evaluator every `cfg.eval.every_steps`; return the run summary (and write
    metrics.jsonl, figures, GIF and the agent under `run_dir` when given)."""
    torch.set_num_threads(cfg.torch_threads)
    seed_everything(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    agent = DQNAgent.from_config(cfg)
    n_actions = agent.q[-1].out_features
    target = copy.deepcopy(agent.q).requires_grad_(False)
    optimizer = torch.optim.Adam(agent.parameters(), lr=cfg.lr)
    envs = make_vector_env(cfg.env_id, cfg.num_envs)
    obs, _ = envs.reset(seed=cfg.seed)
    buffer = ReplayBuffer(cfg.buffer_size, obs.shape[1:])
    stats = EpisodeStats(cfg.num_envs)
    rec = RunRecorder("dqn", cfg, run_dir, report, policy=lambda greedy: agent.act,
                      save=lambda path: save_agent(path, agent, cfg, "dqn"), stochastic=False,
                      freeze=lambda: (lambda greedy, frozen=copy.deepcopy(agent): frozen.act))

    train_every = max(cfg.train_freq // cfg.num_envs, 1)
    target_every = max(cfg.target_update_every // cfg.num_envs, 1)
    losses, qs = [], []
    iterations = math.ceil(cfg.total_env_steps / cfg.num_envs)
    for it in tqdm(range(iterations), desc=f"dqn {cfg.env_id} seed {cfg.seed}", disable=None, mininterval=5):
        step = (it + 1) * cfg.num_envs
        epsilon = linear_epsilon(step, cfg)
        actions = agent.act(obs)
        explore = rng.random(cfg.num_envs) < epsilon
        actions[explore] = rng.integers(0, n_actions, explore.sum())
        next_obs, rewards, terminated, truncated, info = envs.step(actions)
        done = terminated | truncated
        train_rewards = rewards if cfg.failure_reward is None else np.where(terminated, cfg.failure_reward, rewards)
        buffer.add(obs, actions, train_rewards, real_next_obs(next_obs, done, info), terminated)
        rec.episodes(stats.update(rewards, done, step))
        obs = next_obs

        if step > cfg.learning_starts and it % train_every == 0:
            for _ in range(cfg.gradient_steps):
                loss, q = dqn_update(agent, target, optimizer, buffer.sample(cfg.batch_size, rng), cfg)
                losses.append(loss)
                qs.append(q)
        if it % target_every == 0:
            update_target(target, agent.q, cfg.tau)
        if rec.tracker.due(step) or it == iterations - 1:
            extra = {"charts/epsilon": epsilon}
            if losses:
                extra |= {"losses/td_loss": float(np.mean(losses)), "losses/q_values": float(np.mean(qs))}
            losses, qs = [], []
            rec.evaluate(step, extra)
            if rec.tracker.done():
                break
    envs.close()
    return rec.finish(step)
