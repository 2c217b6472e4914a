"""What every RL run records, for our agents and RLlib's alike: episodes, periodic evaluation, the run summary,
figures, an episode GIF and the saved agent."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import numpy as np

from genlab.core.config import save_json, to_dict
from genlab.core.rundir import MetricsWriter
from genlab.eval.rl import Policy, evaluate_policy
from genlab.rl.tracking import EvalTracker

log = logging.getLogger(__name__)
ROLLING = 100  # episodes in the rolling mean of the learning curve (RLlib's default smoothing window too)


def curve_on_grid(points: list[tuple[int, float]], grid: np.ndarray) -> list[float | None]:
    """Value of a step-wise curve at each grid step: the last point at or before it (None before the first and
    after the run's last step, so early-stopped runs are not extrapolated)."""
    if not points:
        return [None] * len(grid)
    steps = np.array([p[0] for p in points])
    spacing = grid[1] - grid[0] if len(grid) > 1 else 0
    out = []
    for g in grid:
        i = int(np.searchsorted(steps, g, side="right")) - 1
        out.append(float(points[i][1]) if i >= 0 and g < steps[-1] + spacing else None)
    return out


PolicyFactory = Callable[[bool], Policy]  # greedy -> the evaluator's callable


class RunRecorder:
    """Owned by a training loop. `policy(greedy)` gives the evaluator's callable over the live agent; `freeze()`
    a factory like it over a copy of the agent as it is now (kept when it validates best); `save(path)` saves the
    live agent."""

    def __init__(self, algo: str, cfg, run_dir: str | Path | None, report: Callable[[dict], None] | None,
                 policy: PolicyFactory, save: Callable[[Path], None] | None, stochastic: bool,
                 freeze: Callable[[], PolicyFactory]):
        self.algo, self.cfg, self.report, self.policy, self.save = algo, cfg, report, policy, save
        self.freeze, self.best_policy = freeze, None
        self.stochastic = stochastic  # also report the sampled (non-greedy) policy's return at the end
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.writer = None
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_json({"algo": algo, **to_dict(cfg)}, self.run_dir / "config.json")
            self.writer = MetricsWriter(self.run_dir / "metrics.jsonl")
        self.tracker = EvalTracker(cfg.eval, cfg.env_id, on_reached=lambda: self._save("agent_reached"),
                                   on_best=self._keep_best)
        self.all_episodes: list[dict] = []
        self.curve: list[tuple[int, float]] = []  # (env step, rolling mean return)

    def _write(self, metrics: dict) -> None:
        if self.writer is not None:
            self.writer.write(metrics)

    def episodes(self, finished: list[dict]) -> None:
        for ep in finished:
            self.all_episodes.append(ep)
            recent = [e["return"] for e in self.all_episodes[-ROLLING:]]
            self.curve.append((ep["step"], float(np.mean(recent))))
            self._write({"step": ep["step"], "charts/episodic_return": ep["return"],
                         "charts/episodic_length": ep["length"]})

    def curve_point(self, step: int, value: float) -> None:
        """For learners that report their own smoothed return (RLlib) instead of single episodes."""
        self.curve.append((step, float(value)))

    def evaluate(self, step: int, extra: dict | None = None) -> dict:
        metrics = self.tracker.evaluate(self.policy(True), step) | (extra or {})
        if self.curve:
            metrics["charts/rolling_return"] = self.curve[-1][1]
        self._write(metrics)
        if self.report is not None:
            self.report(metrics)
        log.info("%s seed %d step %d: %s", self.algo, self.cfg.seed, step,
                 {k: round(v, 2) for k, v in metrics.items() if isinstance(v, float)})
        return metrics

    def _save(self, name: str) -> None:
        if self.run_dir is not None and self.save is not None:
            self.save(self.run_dir / name)

    def _keep_best(self) -> None:
        self.best_policy = self.freeze()
        self._save("agent_best")

    def returned_policy(self, final_validation: float) -> tuple[str, PolicyFactory]:
        """("agent_best", its policy) when selecting on validation and an earlier agent validated strictly
        better than the final one; else ("agent", the final policy)."""
        best = self.tracker.best
        if (self.cfg.eval.select == "best_validation" and self.best_policy is not None
                and best.eval_return > final_validation):
            return "agent_best", self.best_policy
        return "agent", self.policy

    def finish(self, step: int, extra: dict | None = None) -> dict:
        """Final validation; the returned agent picked on it; the test seeds played once by the final and the
        returned agent; summary.json, figures, GIF, saved agent. Returns the summary."""
        ev = self.cfg.eval
        greedy = self.tracker.validate(self.policy(True))
        returned, returned_policy = self.returned_policy(greedy.mean)
        test_final = evaluate_policy(self.policy(True), self.cfg.env_id, ev.episodes, ev.test_seed)
        test = test_final if returned == "agent" else evaluate_policy(returned_policy(True), self.cfg.env_id,
                                                                       ev.episodes, ev.test_seed)
        grid = np.arange(ev.every_steps, self.cfg.total_env_steps + 1, ev.every_steps)
        summary = {"algo": self.algo, "env_id": self.cfg.env_id, "seed": self.cfg.seed, "env_steps": step,
                   "train_seconds": self.tracker.train_seconds(), "episodes": len(self.all_episodes),
                   "eval_episodes": ev.episodes,
                   **self.tracker.summary(), "final_greedy_return_mean": greedy.mean,
                   "final_greedy_return_std": greedy.std, "final_test_return_mean": test_final.mean,
                   "returned_agent": returned,
                   "returned_step": step if returned == "agent" else self.tracker.best.step,
                   "test_return_mean": test.mean, "test_return_std": test.std,
                   "test_return_min": float(test.returns.min()),
                   "curve": {"steps": grid.tolist(), "return": curve_on_grid(self.curve, grid)}, **(extra or {})}
        if self.stochastic:
            sampled = evaluate_policy(self.policy(False), self.cfg.env_id, ev.episodes, ev.seed)
            summary |= {"final_sampled_return_mean": sampled.mean, "final_sampled_return_std": sampled.std}
        if self.run_dir is not None:
            from genlab.rl.figures import learning_curve, record_gif

            if self.save is not None:
                self.save(self.run_dir / "agent")
            save_json(summary, self.run_dir / "summary.json")
            learning_curve(self.all_episodes, self.curve, self.tracker.history, self.tracker.threshold,
                           self.run_dir / "learning_curve.png", f"{self.algo} on {self.cfg.env_id}, seed "
                                                                 f"{self.cfg.seed}")
            record_gif(returned_policy(True), self.cfg.env_id, ev.test_seed, self.run_dir / "episode.gif")
        return summary
