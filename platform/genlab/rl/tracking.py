"""Periodic validation during training: when was the threshold first reached, in env steps and seconds, and
which agent validated best? (Validation seeds only; the test seeds are played after training, in results.py.)"""

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
    """Every `cfg.every_steps` env steps: a greedy screen of a few validation episodes, and the full N-episode
    validation whenever the screen passes. `reached` records the first full pass, `best` the best full
    validation so far (`on_best` fires at each new best, ties included: later agents trained longer);
    `train_seconds` excludes evaluation time."""

    cfg: EvalConfig
    env_id: str
    on_reached: Callable[[], None] | None = None  # e.g. save the agent as `agent_reached`
    on_best: Callable[[], None] | None = None  # e.g. keep a copy of the agent
    threshold: float = field(init=False)
    reached: Reached = field(default_factory=Reached)
    best: Reached = field(default_factory=Reached)
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
        if screen.mean >= self.threshold:
            full = self.validate(policy, screen)
            metrics["eval/return_mean"] = full.mean
            if self.best.step is None or full.mean >= self.best.eval_return:
                self.best = Reached(step, train_seconds, full.mean)
                if self.on_best is not None:
                    self.on_best()
            if full.mean >= self.threshold and self.reached.step is None:
                self.reached = Reached(step, train_seconds, full.mean)
                if self.on_reached is not None:
                    self.on_reached()
        self._eval_seconds += time.perf_counter() - t0
        self.history.append(metrics)
        return metrics

    def validate(self, policy: Policy, screen: EvalResult | None = None) -> EvalResult:
        """The full validation; episode i is seeded `seed + i`, so a screen's episodes are its first ones."""
        if screen is None:
            return evaluate_policy(policy, self.env_id, self.cfg.episodes, self.cfg.seed)
        n_rest = self.cfg.episodes - len(screen.returns)
        if n_rest <= 0:
            return screen
        rest = evaluate_policy(policy, self.env_id, n_rest, self.cfg.seed + len(screen.returns))
        return EvalResult(np.concatenate([screen.returns, rest.returns]),
                          np.concatenate([screen.lengths, rest.lengths]))

    def summary(self) -> dict:
        return {"threshold": self.threshold, **{f"reached_{k}": v for k, v in asdict(self.reached).items()},
                **{f"best_validation_{k}": v for k, v in asdict(self.best).items()}}
