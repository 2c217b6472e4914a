"""A family's training loop inside a Ray Tune trial: the same Runtime calls, mapped onto tune.report and
Tune checkpoints, so ASHA can stop a trial early and Tuner.restore resumes it from its last checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from genlab.core.runtime import Batch, LocalRuntime
from genlab.core.seeding import rng_untouched


class TuneRuntime(LocalRuntime):
    """Writes metrics.jsonl and checkpoints in the trial directory; every report goes to Tune as well, merged
    with the previous ones (the searcher sees the objective in the final result too). `extra(checkpoint)` adds
    metrics computed from a fresh checkpoint (e.g. a disentanglement score). `eval_as` renames the loop's
    `eval/*` metrics (e.g. to `val/` when a trial evaluates on a validation split, as model selection must)."""

    def __init__(self, datasets: dict[str, Batch], seed: int = 0,
                 extra: Callable[[Path], dict] | None = None, eval_as: str = "eval/"):
        from ray import tune

        super().__init__(Path(tune.get_context().get_trial_dir()), datasets, seed=seed, keep=1)
        self.extra = extra
        self.eval_as = eval_as
        self.merged: dict = {}

    def report(self, metrics: dict, checkpoint: Path | None = None) -> None:
        import ray
        from ray import tune

        if checkpoint is not None and self.extra is not None:
            with rng_untouched():  # the checkpoint holds the RNG state from before this metric
                metrics = metrics | self.extra(checkpoint)
        metrics = {(self.eval_as + k.removeprefix("eval/") if k.startswith("eval/") else k): v
                   for k, v in metrics.items()}
        super().report(metrics, checkpoint)
        self.merged |= metrics
        # the node the trial runs on (Tune's own `node_ip` cannot tell apart nodes that share an address)
        tune.report(dict(self.merged) | {"node_id": ray.get_runtime_context().get_node_id()},
                    checkpoint=tune.Checkpoint.from_directory(str(checkpoint)) if checkpoint is not None else None)

    def latest_checkpoint(self) -> Path | None:
        from ray import tune

        restored = tune.get_checkpoint()  # set when Tuner.restore resumes this trial
        if restored is not None:
            return Path(restored.to_directory())
        return super().latest_checkpoint()
