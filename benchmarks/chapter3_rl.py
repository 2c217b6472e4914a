"""Chapter 5.5 benchmarks: every agent over several seeds (Tune trials), results to benchmarks/results/.

    python benchmarks/chapter3_rl.py --only cartpole        # 4 agents x 5 seeds, CartPole-v1 (the bars)
    python benchmarks/chapter3_rl.py --only side_by_side    # own DQN vs RLlib DQN, one trial at a time
    python benchmarks/chapter3_rl.py --only acrobot         # 4 agents x 3 seeds, Acrobot-v1 (no bar)
    python benchmarks/chapter3_rl.py --only dqn_double      # Double DQN x 5 seeds: does the final agent hold?
    python benchmarks/write_results.py                      # re-render RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "platform"))

from genlab.distributed.rl_sweep import rl_job  # noqa: E402
from genlab.distributed.rllib import RLlibDQNConfig, RLlibPPOConfig  # noqa: E402
from genlab.rl import DQNConfig, ReinforceConfig  # noqa: E402
from genlab.core.config import load_json  # noqa: E402


PRESETS = {  # name: (configs, seeds, max concurrent trials, command line of the equivalent job)
    "cartpole": (lambda: {"dqn": DQNConfig(), "reinforce": ReinforceConfig(), "rllib_dqn": RLlibDQNConfig(),
                          "rllib_ppo": RLlibPPOConfig()}, 5, 2, "python jobs/rl.py --seeds 5"),
    "side_by_side": (lambda: {"dqn": DQNConfig(), "rllib_dqn": RLlibDQNConfig()}, 3, 1,
                     "python jobs/rl.py --agents dqn rllib_dqn --seeds 3 --max-concurrent 1"),
    "acrobot": (lambda: {"dqn": DQNConfig(env_id="Acrobot-v1", total_env_steps=100_000),
                         "reinforce": ReinforceConfig(env_id="Acrobot-v1"),
                         "rllib_dqn": RLlibDQNConfig(env_id="Acrobot-v1", total_env_steps=100_000),
                         "rllib_ppo": RLlibPPOConfig(env_id="Acrobot-v1")}, 3, 2,
                "python jobs/rl.py --env-id Acrobot-v1 --seeds 3 --dqn.total-env-steps 100000 "
                "--rllib-dqn.total-env-steps 100000"),
    "dqn_double": (lambda: {"dqn": DQNConfig(double_dqn=True)}, 5, 2,
                   "python jobs/rl.py --agents dqn --seeds 5 --dqn.double-dqn"),
}


def run(name: str, storage: str) -> None:
    make, seeds, concurrent, command = PRESETS[name]
    configs = make()
    t0 = time.time()
    run_dir = rl_job(configs, None, seeds, concurrent, storage, as_test=False, smoke_test=False)
    data = load_json(run_dir / "summaries.json")
    out = {"preset": name, "command": command, "date": time.strftime("%Y-%m-%d"),
           "machine": f"{platform.node()} ({platform.processor() or platform.machine()}), 2 cores, CPU only",
           "wall_s": time.time() - t0, "seeds": seeds, "max_concurrent": concurrent, "run_dir": str(run_dir),
           **data}
    results = HERE / "results"
    (results / f"rl_{name}.json").write_text(json.dumps(out, indent=1) + "\n")
    shutil.copy(run_dir / "curves.png", results / f"rl_{name}_curves.png")
    print(f"wrote {results / f'rl_{name}.json'} ({out['wall_s'] / 60:.1f} min)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=list(PRESETS), default=list(PRESETS))
    parser.add_argument("--storage", default="runs")
    args = parser.parse_args()
    for preset in args.only:
        run(preset, args.storage)
