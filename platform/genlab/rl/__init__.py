"""Chapter 5.5: our own DQN and REINFORCE. Pure torch + gymnasium, no ray (RLlib lives in genlab.distributed)."""

from genlab.core.checkpoint import register_family
from genlab.rl.checkpoint import build_agent
from genlab.rl.config import DQNConfig, EvalConfig, ReinforceConfig

register_family("rl", build_agent)

__all__ = ["DQNConfig", "EvalConfig", "ReinforceConfig"]
