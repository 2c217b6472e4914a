"""Ray Tune + Optuna (TPE) + ASHA sweeps over config dataclass fields: MAML and beta-VAE. The search-space keys
are dotted field names of the job's config (`inner_lr`, `model.latent_dim`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from genlab.core.config import from_dict, save_json, to_dict
from genlab.eval.report import markdown_table


@dataclass
class SweepConfig:
    num_samples: int = 12
    """Trials (Optuna proposes each from the results so far)."""
    max_concurrent: int = 2
    """Trials at once, one CPU each."""
    trial_resources: dict[str, float] = field(default_factory=dict)
    """Custom Ray resources each trial also needs (e.g. `--sweep.trial-resources big_mem 1`: trials only on
    nodes started with that resource); the CPU is always 1."""
    max_failures: int = 0
    """Times Tune restarts a failed trial (from its last checkpoint), e.g. after a lost node."""
    grace_period: int = 1
    """ASHA: reports a trial always gets before it may be stopped."""
    reduction_factor: int = 2
    storage: str = "runs"
    """Where the sweep directory goes (Tune results, TensorBoard files, table, figure, final run)."""
    name: str = ""
    """Sweep name (default: derived from the job); the directory is <storage>/<name>."""
    resume: bool = False
    """Continue an interrupted sweep of this name (Tuner.restore: finished trials are kept, the rest resume)."""
    train_best: bool = True
    """Train the best config to a final checkpoint (the job's full budget) after the sweep."""
    seed: int = 0
    dashboard: bool = False
    """Start the embedded local Ray with its dashboard (http://127.0.0.1:8265, ~1 GB more memory) to watch the
    trials; on a `ray start --head` cluster the dashboard is already there."""


def with_overrides(cfg, flat: dict):
    """`cfg` with dotted-name overrides, e.g. {"model.latent_dim": 8, "beta": 4.0}."""
    data = to_dict(cfg)
    for key, value in flat.items():
        node = data
        *path, last = key.split(".")
        for part in path:
            node = node[part]
        if last not in node:
            raise KeyError(f"{type(cfg).__name__} has no field {key!r}")
        node[last] = value
    return from_dict(type(cfg), data)


def run_sweep(trainable, base_cfg, space: dict, metric: str, mode: str, sweep: SweepConfig, max_t: int) -> dict:
    """Run (or resume) the sweep; returns {"dir", "results": [per trial], "best": {...}}."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from genlab.distributed.env import init_ray

    init_ray(dashboard=sweep.dashboard)
    path = (Path(sweep.storage) / sweep.name).resolve()
    fn = tune.with_resources(tune.with_parameters(trainable, base=to_dict(base_cfg), cls=type(base_cfg)),
                             {"cpu": 1, **sweep.trial_resources})
    if sweep.resume:
        if not tune.Tuner.can_restore(str(path)):
            raise FileNotFoundError(f"--sweep.resume: no sweep to restore at {path}")
        tuner = tune.Tuner.restore(str(path), trainable=fn, resume_errored=True, resume_unfinished=True)
    else:
        searcher = OptunaSearch(metric=metric, mode=mode, seed=sweep.seed)
        scheduler = ASHAScheduler(time_attr="training_iteration", metric=metric, mode=mode, max_t=max_t,
                                  grace_period=sweep.grace_period, reduction_factor=sweep.reduction_factor)
        tuner = tune.Tuner(fn, param_space=space,
                           tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler,
                                                       num_samples=sweep.num_samples,
                                                       max_concurrent_trials=sweep.max_concurrent),
                           run_config=tune.RunConfig(name=sweep.name, storage_path=str(path.parent), verbose=1,
                                                     failure_config=tune.FailureConfig(max_failures=sweep.max_failures)))
    grid = tuner.fit()
    rows = []
    for r in grid:
        if r.metrics is None or metric not in r.metrics:
            continue
        rows.append({"trial": r.metrics.get("trial_id", Path(r.path).name), **dict(sorted(r.config.items())),
                     metric: r.metrics[metric], "iterations": r.metrics.get("training_iteration"),
                     "node": r.metrics.get("node_id"),
                     **{k: v for k, v in r.metrics.items() if k.startswith(("val/", "eval/", "test/"))}})
    if not rows:
        raise RuntimeError(f"no trial reported {metric!r}; see {path}")
    rows.sort(key=lambda row: row[metric], reverse=(mode == "max"))
    best = rows[0]
    save_json({"metric": metric, "mode": mode, "trials": rows, "best": best}, path / "sweep.json")
    return {"dir": path, "results": rows, "best": best}


def results_table(rows: list[dict], metric: str, keys: list[str]) -> str:
    """Markdown table of trials, best first."""
    return markdown_table(rows, ["trial", *keys, metric, "iterations"])


# -- MAML ---------------------------------------------------------------------------------------------------------
MAML_SPACE_KEYS = ["inner_lr", "inner_steps", "lr", "first_order"]


def maml_space():
    from ray import tune

    return {"inner_lr": tune.loguniform(0.05, 1.0), "inner_steps": tune.choice([1, 2, 3]),
            "lr": tune.loguniform(3e-4, 3e-3), "first_order": tune.choice([False, True])}


def maml_trial(params: dict, base: dict, cls) -> None:
    import torch

    from genlab.distributed.tune_runtime import TuneRuntime
    from genlab.meta.train import train

    torch.set_num_threads(1)
    cfg = with_overrides(from_dict(cls, base), params)  # trials rank on validation; only the final run is tested
    train(dataclasses.replace(cfg, progress=False, test_tasks=()), TuneRuntime({}, seed=cfg.seed))


# -- beta-VAE -----------------------------------------------------------------------------------------------------
VAE_SPACE_KEYS = ["beta", "model.latent_dim", "lr"]


def vae_space():
    from ray import tune

    return {"beta": tune.loguniform(0.5, 10.0), "model.latent_dim": tune.choice([4, 8, 16, 32]),
            "lr": tune.loguniform(3e-4, 3e-3)}


def vae_trial(params: dict, base: dict, cls) -> None:
    """Trains on MNIST's train split minus a 10k validation part and reports on that part (`val/*`): the test
    split is left to the best config's final run."""
    import torch

    from genlab.autoencoders.train import train
    from genlab.data import holdout_split, load_dataset
    from genlab.distributed.tune_runtime import TuneRuntime

    torch.set_num_threads(1)
    cfg = dataclasses.replace(with_overrides(from_dict(cls, base), params), progress=False, figures=False)
    fit_part, val = holdout_split(load_dataset(cfg.dataset, "train"), seed=cfg.seed)
    extra = lambda ckpt: vae_disentanglement(ckpt, val)  # noqa: E731
    train(cfg, TuneRuntime({"train": fit_part}, seed=cfg.seed, extra=extra, eval_as="val/"), val)


def vae_disentanglement(checkpoint: Path, images, n: int = 5000) -> dict:
    """Class-MIG of the posterior means of `n` held-out images (the disentanglement proxy objective)."""
    import torch

    from genlab.core.checkpoint import load_model
    from genlab.eval.disentanglement import class_mig
    from genlab.eval.reconstruction import to_float

    model = load_model(checkpoint).eval()
    with torch.no_grad():
        mu = model.encode(to_float(images[0][:n]))[0]
    return {f"eval/{k}": v for k, v in class_mig(mu.flatten(1).numpy(), images[1][:n].numpy()).items()}


@dataclass(frozen=True)
class SweepKind:
    """What differs between the sweeps: search space, trial, the harness loop of the final run, its budget."""

    keys: list[str]
    space: Callable[[], dict]
    trial: Callable
    loop: str
    max_t: Callable[[Any], int]             # ASHA's horizon in reports, from the base config
    final_budget: Callable[[Any, int], dict]  # the best config's final run, given a budget factor
    tradeoff: tuple[str, str, str]          # figure: x, y, colour


KINDS = {
    "maml": SweepKind(MAML_SPACE_KEYS, maml_space, maml_trial, "genlab.meta.train:train",
                      lambda c: max(1, c.episodes // c.eval_every),
                      lambda c, f: {"episodes": c.episodes * f}, ("lr", "val/acc", "inner_lr")),
    "vae": SweepKind(VAE_SPACE_KEYS, vae_space, vae_trial, "genlab.autoencoders.train:train", lambda c: c.epochs,
                     lambda c, f: {"epochs": c.epochs * f, "figures": True},
                     ("val/neg_elbo_nats", "val/mig", "beta")),
}


def sweep_job(kind: str, base_cfg, sweep: SweepConfig, metric: str, mode: str, ray_cfg, smoke_test: bool) -> Path:
    """Body of jobs/tune_maml.py and jobs/tune_beta_vae.py: sweep, table, figure, then the best config trained
    to a final checkpoint under the harness (Ray Train)."""
    from genlab.core.plotting import sweep_tradeoff
    from genlab.distributed.jobs import setup_logging, train_job

    setup_logging()
    spec = KINDS[kind]
    if smoke_test:
        sweep = dataclasses.replace(sweep, num_samples=2)
    if not sweep.name:
        sweep = dataclasses.replace(sweep, name=f"tune-{kind}")
    out = run_sweep(spec.trial, base_cfg, spec.space(), metric, mode, sweep, spec.max_t(base_cfg))
    table = results_table(out["results"], metric, spec.keys)
    (out["dir"] / "trials.md").write_text(table + "\n")
    sweep_tradeoff(out["results"], *spec.tradeoff, out["dir"] / "tradeoff.png",
                   f"{kind} sweep: {len(out['results'])} trials (best: {metric} = {out['best'][metric]:.4g})")
    print(table)
    print(f"sweep directory: {out['dir']} (TensorBoard: tensorboard --logdir {out['dir']})")
    if sweep.train_best:
        # the sweep only had to rank configs: the final run gets twice a trial's budget (smoke: the same)
        best_cfg = with_overrides(base_cfg, {k: out["best"][k] for k in spec.keys})
        best_cfg = dataclasses.replace(best_cfg, progress=not smoke_test,
                                       **spec.final_budget(best_cfg, 1 if smoke_test else 2))
        save_json(to_dict(best_cfg), out["dir"] / "best_config.json")
        run_dir, final = train_job(best_cfg, spec.loop, dataclasses.replace(ray_cfg, storage=str(out["dir"])),
                                   False, None)
        save_json({"run_dir": str(run_dir), "metrics": final}, out["dir"] / "final.json")
        print(f"best config trained to a final checkpoint in {run_dir}")
    return out["dir"]
