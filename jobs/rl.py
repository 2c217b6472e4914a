"""Chapter 5.5: our own DQN and REINFORCE and RLlib's DQN and PPO, each over several seeds as Ray Tune trials;
writes one figure with every agent's curves (mean +- std over seeds) and a table (steps and time to the
threshold, final greedy return).

    python jobs/rl.py                                              # 4 agents x 5 seeds on CartPole-v1
    python jobs/rl.py --agents dqn reinforce --seeds 3 --env-id Acrobot-v1
    python jobs/rl.py --agents dqn --dqn.double-dqn --dqn.num-envs 4 --as-test
    ray job submit --working-dir . -- python jobs/rl.py --smoke-test
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from genlab.core.cli import cli
from genlab.distributed.rl_sweep import rl_job
from genlab.distributed.rllib import RLlibDQNConfig, RLlibPPOConfig
from genlab.rl import DQNConfig, ReinforceConfig

Agent = Literal["dqn", "reinforce", "rllib_dqn", "rllib_ppo"]


@dataclass
class Args:
    agents: tuple[Agent, ...] = ("dqn", "reinforce", "rllib_dqn", "rllib_ppo")
    """Which agents to train."""
    env_id: str | None = None
    """Environment for every agent (overrides each agent's own env_id), e.g. Acrobot-v1."""
    seeds: int = 5
    """Seeds 0 .. seeds-1 per agent, one Tune trial each."""
    max_concurrent: int = 2
    """Trials at once (one CPU each)."""
    dqn: DQNConfig = field(default_factory=DQNConfig)
    reinforce: ReinforceConfig = field(default_factory=ReinforceConfig)
    rllib_dqn: RLlibDQNConfig = field(default_factory=RLlibDQNConfig)
    rllib_ppo: RLlibPPOConfig = field(default_factory=RLlibPPOConfig)
    storage: str = "runs"
    """Where the run directory `rl-<env>__<first seed>__<time>/` goes (shared storage on a cluster)."""
    as_test: bool = False
    """Exit with status 1 when any run misses its bar within its budget (RLlib's --as-test convention)."""
    smoke_test: bool = False
    """Tiny budgets (a few thousand env steps), 1 seed: checks everything end to end."""


def main(args: Args) -> None:
    configs = {name: getattr(args, name) for name in args.agents}
    rl_job(configs, args.env_id, args.seeds, args.max_concurrent, args.storage, args.as_test, args.smoke_test)


if __name__ == "__main__":
    main(cli(Args))
