"""Config dataclasses of our own RL agents (chapter 5.5); every field is a `--help` line."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal


@dataclass
class EvalConfig:
    """When and how the agent is scored (greedy, true reward). Two disjoint sets of episode seeds: validation
    seeds, looked at during training to decide "reached" and to select the agent a run returns, and test seeds,
    played once, by the final and the returned agent, after training."""

    every_steps: int = 2500
    """Score the agent every this many env steps."""
    screen_episodes: int = 10
    """A cheap screen first; only a screen at/above `threshold` triggers the full validation."""
    episodes: int = 100
    """Episodes of the full validation and of the test (the bar: mean greedy return over these)."""
    threshold: float | None = None
    """Return to reach; None = the environment's own `reward_threshold` (CartPole-v1: 475, Acrobot-v1: -100)."""
    seed: int = 10_000
    """Validation episode i uses env seed `seed + i` (training seeds are small integers)."""
    test_seed: int = 20_000
    """Test episode i uses env seed `test_seed + i`; must leave the validation seeds' range."""
    select: Literal["best_validation", "final"] = "best_validation"
    """Which agent the run returns: the one with the best full-validation mean (the final agent when it is as
    good), or simply the final one."""
    stop_when_reached: bool = False
    """Stop training once the full validation passes the threshold (saves compute; shortens the curve)."""

    def __post_init__(self):
        n = self.episodes
        if self.seed < self.test_seed + n and self.test_seed < self.seed + n:
            raise ValueError(f"test seeds {self.test_seed}..{self.test_seed + n - 1} overlap the validation seeds "
                             f"{self.seed}..{self.seed + n - 1}: move --eval.test-seed out of that range")


@dataclass
class DQNConfig:
    """DQN after Mnih et al. (2015) with the seed's network and the rl-zoo CartPole settings."""

    env_id: str = "CartPole-v1"
    """Any gymnasium environment with a Box observation and a Discrete action space."""
    seed: int = 0
    total_env_steps: int = 50_000
    """Training budget in env steps (summed over vectorised envs)."""
    num_envs: int = 1
    """Vectorised environments (gymnasium.vector, synchronous) stepped together."""
    hidden: tuple[int, ...] = (256, 256)
    """Q-network hidden layer widths (ReLU)."""
    lr: float = 2.3e-3
    batch_size: int = 64
    buffer_size: int = 100_000
    gamma: float = 0.99
    learning_starts: int = 1000
    """Env steps of random play before the first update."""
    train_freq: int = 256
    """Env steps between training phases."""
    gradient_steps: int = 128
    """Gradient steps per training phase."""
    target_update_every: int = 10
    """Env steps between target-network updates."""
    tau: float = 1.0
    """Target update weight: 1 = hard copy, < 1 = Polyak averaging."""
    eps_start: float = 1.0
    eps_end: float = 0.04
    eps_fraction: float = 0.16
    """Epsilon decays linearly from eps_start to eps_end over this fraction of total_env_steps."""
    double_dqn: bool = False
    """Double DQN (van Hasselt et al. 2016): the online net picks a', the target net scores it."""
    huber_delta: float = 1.0
    """Huber (smooth L1) loss threshold on the TD error."""
    max_grad_norm: float = 10.0
    failure_reward: float | None = None
    """The seed's reward shaping: replace the reward of a terminal (failed) step with this, e.g. -10. Training
    only; logged returns and evaluation always use the true reward."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    torch_threads: int = 1
    """Threads for torch (small MLPs: 1 is fastest, and leaves the other core to a parallel trial)."""


@dataclass
class ReinforceConfig:
    """REINFORCE (Williams 1992) with discounted, normalised returns and an optional learned value baseline."""

    env_id: str = "CartPole-v1"
    seed: int = 0
    total_env_steps: int = 300_000
    hidden: tuple[int, ...] = (64, 64)
    """Policy (and value) network hidden widths (tanh)."""
    lr: float = 2e-3
    value_lr: float = 5e-3
    gamma: float = 0.99
    episodes_per_update: int = 4
    """Episodes collected with one policy before each gradient step."""
    baseline: bool = True
    """Subtract a learned state-value V(s) from the returns (advantage = G_t - V(s_t))."""
    normalize: bool = True
    """Normalise returns/advantages over the batch to mean 0, std 1 (as the seed does)."""
    entropy_coef: float = 0.0
    max_grad_norm: float = 1.0
    failure_reward: float | None = None
    """The seed's reward shaping on a terminal step (training only; evaluation uses the true reward)."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    torch_threads: int = 1


def smoke_eval(cfg: EvalConfig) -> EvalConfig:
    """Evaluation at smoke scale (our agents' and RLlib's smoke configs)."""
    return replace(cfg, every_steps=500, screen_episodes=2, episodes=3)


def smoke_config(cfg):
    """A few thousand env steps and short evaluations: checks everything end to end in seconds."""
    small_eval = smoke_eval(cfg.eval)
    if isinstance(cfg, DQNConfig):
        return replace(cfg, total_env_steps=1500, learning_starts=200, train_freq=64, gradient_steps=8,
                       buffer_size=2000, hidden=(32,), eval=small_eval)
    return replace(cfg, total_env_steps=1500, hidden=(16,), eval=small_eval)
