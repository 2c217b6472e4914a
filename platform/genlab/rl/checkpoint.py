"""Save an agent in the project's checkpoint format; `genlab.core.checkpoint.load_model(dir)` loads it back."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from genlab.core.checkpoint import save_checkpoint
from genlab.core.config import from_dict, to_dict
from genlab.rl.config import DQNConfig, ReinforceConfig

ALGOS = {"dqn": DQNConfig, "reinforce": ReinforceConfig}


def save_agent(path: str | Path, agent: nn.Module, cfg, algo: str) -> Path:
    return save_checkpoint(path, family="rl", config={"algo": algo, **to_dict(cfg)}, model=agent)


def build_agent(config: dict) -> nn.Module:
    """Rebuild an untrained agent from a checkpoint's config (the `rl` family builder)."""
    from genlab.rl.dqn import DQNAgent
    from genlab.rl.reinforce import ReinforceAgent

    config = dict(config)
    algo = config.pop("algo")
    if algo not in ALGOS:
        raise ValueError(f"unknown RL algorithm {algo!r} in checkpoint; known: {sorted(ALGOS)}")
    cfg = from_dict(ALGOS[algo], config)
    return (DQNAgent if algo == "dqn" else ReinforceAgent).from_config(cfg)
