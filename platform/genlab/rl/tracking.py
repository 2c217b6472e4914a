"""Periodic evaluation during training: when was the threshold first reached, in env steps and seconds?"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from genlab.eval.rl import EvalResult, Policy, evaluate_policy
from genlab.rl.config import EvalConfig
from genlab.rl.envs import reward_threshold


@dataclass
class Reached:
    step: int | None = None
    train_seconds: float | None = None
    eval_return: float | None = None


@dataclass
class EvalTracker:
    """Every `cfg.every_steps` env steps: a greedy screen of a few episodes, and the full N-episode evaluation
    when the screen passes. `reached` records the first full pass; `train_seconds` excludes evaluation time."""

    cfg: EvalConfig
    env_id: str
    on_reached: Callable[[], None] | None = None  # e.g. save the agent as `agent_reached`
    threshold: float = field(init=False)
    reached: Reached = field(default_factory=Reached)
    history: list[dict] = field(default_factory=list)

    def __post_init__(self):
        self.threshold = reward_threshold(self.env_id, self.cfg.threshold)
        self._next = self.cfg.every_steps
        self._start = time.perf_counter()
        self._eval_seconds = 0.0

    def train_seconds(self) -> float:
        return time.perf_counter() - self._start - self._eval_seconds

    def due(self, step: int) -> bool:
        return step >= self._next

    def done(self) -> bool:
        return self.cfg.stop_when_reached and self.reached.step is not None

    def evaluate(self, policy: Policy, step: int) -> dict:
        """Screen (and maybe fully evaluate) `policy` at `step`; returns metrics for the log."""
        train_seconds = self.train_seconds()
        t0 = time.perf_counter()
        while self._next <= step:
            self._next += self.cfg.every_steps
        screen = evaluate_policy(policy, self.env_id, self.cfg.screen_episodes, self.cfg.seed)
        metrics = {"step": step, "eval/screen_return_mean": screen.mean, "perf/train_seconds": train_seconds}
        if screen.mean >= self.threshold and self.reached.step is None:
            # episode i is seeded seed + i: the screen's episodes are the full evaluation's first ones
            full, n_rest = screen, self.cfg.episodes - len(screen.returns)
            if n_rest > 0:
                rest = evaluate_policy(policy, self.env_id, n_rest, self.cfg.seed + len(screen.returns))
                full = EvalResult(np.concatenate([screen.returns, rest.returns]),
                                  np.concatenate([screen.lengths, rest.lengths]))
            metrics["eval/return_mean"] = full.mean
            if full.mean >= self.threshold:
                self.reached = Reached(step, train_seconds, full.mean)
                if self.on_reached is not None:
                    self.on_reached()
        self._eval_seconds += time.perf_counter() - t0
        self.history.append(metrics)
        return metrics

    def summary(self) -> dict:
        return {"threshold": self.threshold, **{f"reached_{k}": v for k, v in asdict(self.reached).items()}}
