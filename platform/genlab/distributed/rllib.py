"""RLlib DQN and PPO on the current API stack (AlgorithmConfig builders), scored by our own evaluator.

Settings follow RLlib's tuned CartPole examples (rllib/tuned_examples/{dqn,ppo}/cartpole_*.py), whose bar is
an `episode_return_mean` of 450 within 200k env steps; `num_env_runners=0` (sampling in the trial's own process)
fits 2 CPUs best.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from genlab.eval.rl import Policy
from genlab.rl.config import EvalConfig, smoke_eval
from genlab.rl.envs import reward_threshold
from genlab.rl.results import RunRecorder


@dataclass
class RLlibCommon:
    """What RLlib's DQN and PPO configs share."""

    env_id: str = "CartPole-v1"
    seed: int = 0
    total_env_steps: int = 200_000
    stop_return: float | None = None
    """Bar on RLlib's own training metric `env_runners/episode_return_mean` (100-episode mean); None = RLlib's
    tuned-example bar where there is one (CartPole-v1: 450), else the environment's reward_threshold."""
    num_env_runners: int = 0


@dataclass
class RLlibDQNConfig(RLlibCommon):
    """RLlib DQN, tuned example settings: dueling double DQN, prioritized replay, n-step 2-5."""

    lr: float = 5e-4
    train_batch_size: int = 32
    buffer_capacity: int = 50_000
    n_step: tuple[int, int] = (2, 5)
    """n-step returns, sampled uniformly in this range per batch."""
    epsilon_steps: int = 10_000
    """Epsilon decays linearly from 1 to `epsilon_final` over this many env steps."""
    epsilon_final: float = 0.02
    hidden: tuple[int, ...] = (256,)
    head_hidden: tuple[int, ...] = (256,)
    eval: EvalConfig = field(default_factory=lambda: EvalConfig(stop_when_reached=True))
    """Stops by default once both bars are passed (the slowest learner here, ~2.5 ms per env step on 2 CPUs;
    RLlib's tuned example stops at its bar too)."""


@dataclass
class RLlibPPOConfig(RLlibCommon):
    """RLlib PPO, tuned example settings: a 32-unit linear trunk shared by policy and value."""

    lr: float = 3e-4
    num_epochs: int = 6
    vf_loss_coeff: float = 0.01
    train_batch_size: int = 4000
    minibatch_size: int = 128
    hidden: tuple[int, ...] = (32,)
    activation: str = "linear"
    eval: EvalConfig = field(default_factory=lambda: EvalConfig(every_steps=4000))


RLLIB_BARS = {"CartPole-v1": 450.0}  # rllib/tuned_examples/{dqn,ppo}/cartpole_*.py: default_reward


def rllib_bar(cfg: RLlibCommon) -> float:
    if cfg.stop_return is not None:
        return float(cfg.stop_return)
    return RLLIB_BARS.get(cfg.env_id) or reward_threshold(cfg.env_id, None)


def algorithm_config(cfg: RLlibCommon):
    from ray.rllib.algorithms.dqn import DQNConfig
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    if isinstance(cfg, RLlibDQNConfig):
        return (DQNConfig().environment(cfg.env_id)
                .env_runners(num_env_runners=cfg.num_env_runners)
                .training(lr=cfg.lr, train_batch_size_per_learner=cfg.train_batch_size,
                          replay_buffer_config={"type": "PrioritizedEpisodeReplayBuffer",
                                                "capacity": cfg.buffer_capacity, "alpha": 0.6, "beta": 0.4},
                          n_step=cfg.n_step, double_q=True, dueling=True,
                          epsilon=[(0, 1.0), (cfg.epsilon_steps, cfg.epsilon_final)])
                .rl_module(model_config=DefaultModelConfig(
                    fcnet_hiddens=list(cfg.hidden), fcnet_activation="tanh", fcnet_bias_initializer="zeros_",
                    head_fcnet_bias_initializer="zeros_", head_fcnet_hiddens=list(cfg.head_hidden)))
                .debugging(seed=cfg.seed))
    return (PPOConfig().environment(cfg.env_id)
            .env_runners(num_env_runners=cfg.num_env_runners)
            .training(lr=cfg.lr, num_epochs=cfg.num_epochs, vf_loss_coeff=cfg.vf_loss_coeff,
                      train_batch_size_per_learner=cfg.train_batch_size, minibatch_size=cfg.minibatch_size)
            .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=list(cfg.hidden),
                                                       fcnet_activation=cfg.activation, vf_share_layers=True))
            .debugging(seed=cfg.seed))


def module_policy(module, greedy: bool = True) -> Policy:
    """Our evaluator's callable over an RLModule: DQN's forward_inference gives greedy `actions`; PPO's gives
    logits (`action_dist_inputs`), argmax for greedy, sampled otherwise."""
    def policy(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = module.forward_inference({"obs": torch.as_tensor(obs, dtype=torch.float32)})
        if "actions" in out:
            return out["actions"].numpy()
        logits = out["action_dist_inputs"]
        if greedy:
            return logits.argmax(1).numpy()
        return torch.distributions.Categorical(logits=logits).sample().numpy()
    return policy


def load_rllib_policy(checkpoint: str | Path, greedy: bool = True) -> Policy:
    """The trained module of an `algo.save_to_path` checkpoint, without building the algorithm."""
    from ray.rllib.core.rl_module.rl_module import RLModule

    path = Path(checkpoint) / "learner_group" / "learner" / "rl_module" / "default_policy"
    if not path.is_dir():
        raise FileNotFoundError(f"{checkpoint} is not an RLlib algorithm checkpoint (no {path})")
    return module_policy(RLModule.from_checkpoint(str(path)), greedy)


def train_rllib(cfg: RLlibCommon, run_dir: str | Path | None = None,
                report: Callable[[dict], None] | None = None) -> dict:
    """Build the algorithm, `train()` until `total_env_steps`, score the module with our evaluator every
    `cfg.eval.every_steps`; also record when RLlib's own metric first reached `stop_return`. With
    `eval.stop_when_reached`, stop once both have been reached."""
    torch.set_num_threads(1)
    name = "rllib_dqn" if isinstance(cfg, RLlibDQNConfig) else "rllib_ppo"
    algo = algorithm_config(cfg).build_algo()
    rec = RunRecorder(name, cfg, run_dir, report, policy=lambda greedy: module_policy(algo.get_module(), greedy),
                      save=lambda path: algo.save_to_path(str(Path(path).resolve())), stochastic=name == "rllib_ppo",
                      freeze=lambda: (lambda greedy, m=copy.deepcopy(algo.get_module()): module_policy(m, greedy)))
    bar = rllib_bar(cfg)
    rllib_reached, step = {"rllib_reached_step": None, "rllib_reached_train_seconds": None}, 0
    while step < cfg.total_env_steps and not (rec.tracker.done() and rllib_reached["rllib_reached_step"]):
        result = algo.train()
        step = int(result["num_env_steps_sampled_lifetime"])
        ret = result["env_runners"].get("episode_return_mean")
        if ret is None or np.isnan(ret):
            continue
        rec.curve_point(step, ret)
        if ret >= bar and rllib_reached["rllib_reached_step"] is None:
            rllib_reached = {"rllib_reached_step": step, "rllib_reached_train_seconds": rec.tracker.train_seconds()}
        if rec.tracker.due(step):
            rec.evaluate(step, {"rllib/episode_return_mean": ret})
    summary = rec.finish(step, extra={"stop_return": bar, **rllib_reached})
    algo.stop()
    return summary


def smoke_rllib(cfg: RLlibCommon) -> RLlibCommon:
    """A couple of small iterations: checks build, train, evaluation and save end to end."""
    small_eval = smoke_eval(cfg.eval)
    if isinstance(cfg, RLlibDQNConfig):
        return replace(cfg, total_env_steps=1500, hidden=(32,), head_hidden=(32,), eval=small_eval)
    return replace(cfg, total_env_steps=1000, train_batch_size=500, minibatch_size=100, eval=small_eval)
