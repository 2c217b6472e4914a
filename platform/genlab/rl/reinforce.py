"""REINFORCE (Williams 1992) as in the seed, with the log-probabilities it forgot: discounted, normalised
returns, optionally minus a learned value baseline. Pure torch + gymnasium."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from genlab.core.seeding import seed_everything
from genlab.rl.checkpoint import save_agent
from genlab.rl.config import ReinforceConfig
from genlab.rl.envs import env_dims
from genlab.rl.networks import mlp
from genlab.rl.results import RunRecorder


class ReinforceAgent(nn.Module):
    """A softmax policy pi(a|s) and, with a baseline, a state-value head V(s) (separate networks)."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: tuple[int, ...] = (64, 64), baseline: bool = True):
        super().__init__()
        self.policy = mlp([obs_dim, *hidden, n_actions], nn.Tanh)
        self.value = mlp([obs_dim, *hidden, 1], nn.Tanh) if baseline else None

    @classmethod
    def from_config(cls, cfg: ReinforceConfig) -> "ReinforceAgent":
        return cls(*env_dims(cfg.env_id), cfg.hidden, cfg.baseline)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:  # (B, obs_dim) -> logits (B, n_actions)
        return self.policy(obs)

    @torch.no_grad()
    def act(self, obs: np.ndarray, greedy: bool = False) -> np.ndarray:
        logits = self.policy(torch.as_tensor(obs, dtype=torch.float32))
        if greedy:
            return logits.argmax(1).numpy()
        return torch.distributions.Categorical(logits=logits).sample().numpy()


# ALGO LOGIC
def discounted_returns(rewards, gamma: float, bootstrap: float = 0.0) -> np.ndarray:
    """G_t = r_t + gamma * G_{t+1}, with G_T = `bootstrap` (V(s_T) after a truncation, else 0)."""
    out = np.zeros(len(rewards), dtype=np.float32)
    g = bootstrap
    for t in range(len(rewards) - 1, -1, -1):
        g = rewards[t] + gamma * g
        out[t] = g
    return out


def reinforce_loss(agent: ReinforceAgent, obs: torch.Tensor, actions: torch.Tensor, returns: torch.Tensor,
                   normalize: bool, entropy_coef: float = 0.0) -> tuple[torch.Tensor, dict]:
    """-mean_t log pi(a_t|s_t) * A_t (+ value MSE); A_t = G_t - V(s_t) with a baseline, else G_t.
    The log-probabilities are recomputed from the stored (s, a): the policy has not changed since acting."""
    logits = agent(obs)
    log_probs = F.log_softmax(logits, dim=1)
    log_pi = log_probs.gather(1, actions[:, None]).squeeze(1)
    value_loss = torch.zeros(())
    advantages = returns
    if agent.value is not None:
        values = agent.value(obs).squeeze(1)
        value_loss = F.mse_loss(values, returns)
        advantages = returns - values.detach()
    if normalize and len(advantages) > 1:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    entropy = -(log_probs.exp() * log_probs).sum(1).mean()
    policy_loss = -(log_pi * advantages).mean() - entropy_coef * entropy
    return policy_loss + value_loss, {"losses/policy_loss": policy_loss.item(),
                                      "losses/value_loss": value_loss.item(), "losses/entropy": entropy.item()}
# END ALGO LOGIC


def train_reinforce(cfg: ReinforceConfig, run_dir: str | Path | None = None,
                    report: Callable[[dict], None] | None = None) -> dict:
    """Train on whole episodes (`episodes_per_update` per gradient step) until `total_env_steps`."""
    torch.set_num_threads(cfg.torch_threads)
    seed_everything(cfg.seed)
    agent = ReinforceAgent.from_config(cfg)
    optimizer = torch.optim.Adam([{"params": agent.policy.parameters(), "lr": cfg.lr}]
                                 + ([{"params": agent.value.parameters(), "lr": cfg.value_lr}]
                                    if agent.value is not None else []))
    env = gym.make(cfg.env_id)
    obs, _ = env.reset(seed=cfg.seed)
    rec = RunRecorder("reinforce", cfg, run_dir, report, policy=lambda greedy: lambda o: agent.act(o, greedy),
                      save=lambda path: save_agent(path, agent, cfg, "reinforce"), stochastic=True,
                      freeze=lambda: (lambda greedy, frozen=copy.deepcopy(agent): lambda o: frozen.act(o, greedy)))
    step, logs = 0, []
    bar = tqdm(total=cfg.total_env_steps, desc=f"reinforce {cfg.env_id} seed {cfg.seed}", disable=None,
               mininterval=5)
    while step < cfg.total_env_steps and not rec.tracker.done():
        batch_obs, batch_actions, batch_returns = [], [], []
        for _ in range(cfg.episodes_per_update):
            ep_obs, ep_actions, ep_rewards, true_return = [], [], [], 0.0
            while True:
                action = int(agent.act(obs[None])[0])
                next_obs, reward, terminated, truncated, _ = env.step(action)
                ep_obs.append(obs)
                ep_actions.append(action)
                shaped = terminated and cfg.failure_reward is not None
                ep_rewards.append(cfg.failure_reward if shaped else reward)
                true_return += reward
                step += 1
                obs = next_obs
                if terminated or truncated:
                    break
            bootstrap = 0.0
            if truncated and not terminated and agent.value is not None:  # the episode goes on beyond the limit
                with torch.no_grad():
                    bootstrap = agent.value(torch.as_tensor(obs[None], dtype=torch.float32)).item()
            batch_obs += ep_obs
            batch_actions += ep_actions
            batch_returns.append(discounted_returns(ep_rewards, cfg.gamma, bootstrap))
            rec.episodes([{"step": step, "return": true_return, "length": len(ep_rewards)}])
            bar.update(len(ep_rewards))
            obs, _ = env.reset()
            if rec.tracker.due(step):
                extra = {k: float(np.mean([d[k] for d in logs])) for k in logs[0]} if logs else {}
                logs = []
                rec.evaluate(step, extra)
            if step >= cfg.total_env_steps:
                break
        loss, info = reinforce_loss(agent, torch.as_tensor(np.array(batch_obs), dtype=torch.float32),
                                    torch.as_tensor(batch_actions), torch.as_tensor(np.concatenate(batch_returns)),
                                    cfg.normalize, cfg.entropy_coef)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(agent.policy.parameters(), cfg.max_grad_norm)  # apart: the value loss's
        if agent.value is not None:                                             # larger gradients must not
            nn.utils.clip_grad_norm_(agent.value.parameters(), cfg.max_grad_norm)  # shrink the policy's
        optimizer.step()
        logs.append(info)
    bar.close()
    env.close()
    if not rec.tracker.history or rec.tracker.history[-1]["step"] != step:
        rec.evaluate(step)
    return rec.finish(step)
