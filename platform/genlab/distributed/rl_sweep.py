"""Several agents x several seeds as Ray Tune trials (a grid over agent and seed), one CPU each."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from genlab.core.config import load_json, save_json, to_dict
from genlab.core.rundir import make_run_dir
from genlab.distributed.jobs import setup_logging
from genlab.distributed.rllib import smoke_rllib
from genlab.rl.config import smoke_config
from genlab.rl.envs import env_dims
from genlab.rl.report import missed_bars, write_report

AGENTS = ("dqn", "reinforce", "rllib_dqn", "rllib_ppo")


def run_agent(agent: str, cfg, run_dir: Path | None = None, report=None) -> dict:
    """Train one agent in this process; returns its run summary."""
    if agent == "dqn":
        from genlab.rl.dqn import train_dqn
        return train_dqn(cfg, run_dir, report)
    if agent == "reinforce":
        from genlab.rl.reinforce import train_reinforce
        return train_reinforce(cfg, run_dir, report)
    if agent in ("rllib_dqn", "rllib_ppo"):
        from genlab.distributed.rllib import train_rllib
        return train_rllib(cfg, run_dir, report)
    raise ValueError(f"unknown agent {agent!r}; choose from {AGENTS}")


def _trial(params: dict, configs: dict, root: str) -> None:
    from ray import tune

    agent, seed = params["agent"], params["seed"]
    cfg = dataclasses.replace(configs[agent], seed=seed)
    summary = run_agent(agent, cfg, Path(root) / agent / f"seed_{seed}", report=tune.report)
    tune.report({k: v for k, v in summary.items() if isinstance(v, (int, float, str)) and v is not None}
                | {"step": summary["env_steps"], "finished": 1})


def run_seed_sweep(configs: dict, seeds: list[int], run_dir: Path, max_concurrent: int = 2) -> list[dict]:
    """Train every agent in `configs` ({name: config}) with every seed as a Tune trial; each trial writes its
    run under `run_dir/<agent>/seed_<n>/` (shared storage on a multi-node cluster). Returns the summaries."""
    from ray import tune

    from genlab.distributed.env import init_ray

    unknown = set(configs) - set(AGENTS)
    if unknown:
        raise ValueError(f"unknown agent(s) {sorted(unknown)}; choose from {AGENTS}")
    init_ray()
    run_dir = Path(run_dir).resolve()
    trainable = tune.with_resources(tune.with_parameters(_trial, configs=configs, root=str(run_dir)), {"cpu": 1})
    tuner = tune.Tuner(
        trainable,
        param_space={"agent": tune.grid_search(list(configs)), "seed": tune.grid_search(list(seeds))},
        tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent),
        run_config=tune.RunConfig(name="trials", storage_path=str(run_dir / "tune"), verbose=1),
    )
    results = tuner.fit()
    errors = [str(r.error) for r in results if r.error is not None]
    if errors:
        raise RuntimeError(f"{len(errors)} trial(s) failed; first error:\n{errors[0]}")
    summaries = []
    for agent in configs:
        for seed in seeds:
            summaries.append(load_json(run_dir / agent / f"seed_{seed}" / "summary.json"))
    return summaries


def rl_job(configs: dict, env_id: str | None, seeds: int, max_concurrent: int, storage: str, as_test: bool,
           smoke_test: bool) -> Path:
    """Body of jobs/rl.py: apply --env-id / --smoke-test, run the sweep, write the report, check the bars."""
    if not configs:
        raise SystemExit("--agents: name at least one of " + ", ".join(AGENTS))
    if seeds < 1:
        raise SystemExit(f"--seeds must be >= 1, got {seeds}")
    if env_id is not None:
        configs = {k: dataclasses.replace(c, env_id=env_id) for k, c in configs.items()}
    if smoke_test:
        configs = {k: (smoke_rllib if k.startswith("rllib") else smoke_config)(c) for k, c in configs.items()}
        seeds = 1
    for c in configs.values():
        env_dims(c.env_id)  # a clear error before any Ray start-up
    setup_logging()
    run_dir = make_run_dir(f"rl-{next(iter(configs.values())).env_id}", 0, root=storage)
    save_json({"agents": {k: to_dict(c) for k, c in configs.items()}, "seeds": seeds}, run_dir / "config.json")
    summaries = run_seed_sweep(configs, list(range(seeds)), run_dir, max_concurrent)
    budgets = {k: c.total_env_steps for k, c in configs.items()}
    paths = write_report(summaries, budgets, run_dir)
    print(paths["table"].read_text())
    print(f"run directory: {run_dir}\n  figure: {paths['figure']}\n  table: {paths['table']}, {paths['csv']}")
    missed = missed_bars(summaries, budgets)
    if as_test and missed:
        raise SystemExit("--as-test: bars missed:\n  " + "\n  ".join(missed))
    return run_dir
