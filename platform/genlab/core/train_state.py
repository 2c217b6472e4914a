"""TrainState: everything a run needs to continue exactly where it stopped, on any number of ranks.

Weights go to the checkpoint's safetensors files (`model.safetensors`, `ema.safetensors`); optimisers,
schedulers, counters and the RNG streams of **every rank** go to `train_state.pt`. On N workers each rank
keeps its own RNG stream (python, numpy, torch and the family's named generators): rank 0 gathers them at
a checkpoint and each rank takes its own back on resume.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn
from torch.optim.swa_utils import AveragedModel

from genlab.core.checkpoint import load_train_state, save_checkpoint
from genlab.core.distributed import broadcast_module_
from genlab.core.seeding import rng_state, seed_everything, set_rng_state

log = logging.getLogger(__name__)


class TrainState:
    """`model` is what the checkpoint saves and `load_model` rebuilds. `ddp` names the submodules the runtime
    wraps for data parallelism ("" = the whole model; () = none, for families that all-reduce gradients
    themselves). `ema` averages the submodule `ema_of`. `generators` are extra per-rank random streams. `aux` are
    modules trained beside the model but not part of it (a pretraining classifier's head): their weights go to
    train_state.pt, so a resume continues them, and `load_model` never sees them."""

    def __init__(self, model: nn.Module, optimizers: dict[str, torch.optim.Optimizer],
                 schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler] | None = None,
                 ema: AveragedModel | None = None, ema_of: str = "",
                 generators: dict[str, torch.Generator] | None = None, ddp: tuple[str, ...] = ("",),
                 aux: dict[str, nn.Module] | None = None):
        self.model = model
        self.optimizers = optimizers
        self.schedulers = schedulers or {}
        self.ema = ema
        self.ema_of = ema_of
        self.generators = generators or {}
        self.ddp = ddp
        self.aux = aux or {}
        self.step = 0
        self.epoch = 0
        self._wrapped: dict[str, nn.Module] = {}

    # -- the modules a step uses --------------------------------------------------------------------------
    def module(self, name: str = "") -> nn.Module:
        """The runtime's version of a (sub)module: DDP-wrapped when it is in `ddp`, else the plain one."""
        if name in self._wrapped:
            return self._wrapped[name]
        return self.model.get_submodule(name) if name else self.model

    def train_mode(self) -> None:
        for m in [self.model, *self._wrapped.values(), *self.aux.values()]:
            m.train()

    def prepare(self, rt, checkpoint: Path | None = None, seed: int = 0) -> None:
        """Move to the runtime's device, load `checkpoint` (this rank's RNG too), make every rank hold rank 0's
        weights, then wrap the `ddp` modules. Loading after the move puts optimiser state on the device."""
        self.model.to(rt.device)
        for m in [*self.aux.values(), *([self.ema] if self.ema is not None else [])]:
            m.to(rt.device)
        if checkpoint is not None:
            self.load(checkpoint, rt.rank, seed)
        for m in [self.model, *self.aux.values()]:
            broadcast_module_(m)
        if self.ema is not None:
            broadcast_module_(self.ema)
        self._wrapped = {name: rt.prepare_model(self.model.get_submodule(name) if name else self.model)
                         for name in self.ddp}

    # -- state ------------------------------------------------------------------------------------------
    def rank_state(self) -> dict:
        """This rank's random streams (gathered by rank 0 into the checkpoint)."""
        return {**rng_state(), "generators": {k: g.get_state() for k, g in self.generators.items()}}

    def state_dict(self, rank_states: list[dict]) -> dict:
        return {"step": self.step, "epoch": self.epoch,
                "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
                "ema_n_averaged": int(self.ema.n_averaged) if self.ema is not None else 0,
                "aux": {k: m.state_dict() for k, m in self.aux.items()},
                "rng": rank_states}

    def load_state_dict(self, state: dict, rank: int = 0, seed: int = 0) -> None:
        if "optimizers" not in state:
            raise ValueError("this checkpoint was written by an older genlab: load_model() reads its weights, "
                             "but it cannot resume training; start a new run")
        self.step, self.epoch = state["step"], state["epoch"]
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        for k, s in self.schedulers.items():
            s.load_state_dict(state["schedulers"][k])
        if self.ema is not None:
            self.ema.n_averaged.fill_(state["ema_n_averaged"])
        for k, m in self.aux.items():
            m.load_state_dict(state["aux"][k])
        ranks = state["rng"]
        if rank < len(ranks):
            mine = ranks[rank]
            set_rng_state(mine)
            for k, g in self.generators.items():
                g.set_state(mine["generators"][k])
        else:  # resumed on more workers than saved: a fresh, distinct stream for this rank
            log.warning("rank %d has no saved RNG state (the run was saved with %d ranks); seeding afresh",
                        rank, len(ranks))
            seed_everything(seed + 1000 * rank + 7 * self.step)
            for i, g in enumerate(self.generators.values()):
                g.manual_seed(seed + 1000 * rank + 7 * self.step + i + 1)

    def ema_state_dict(self) -> dict[str, torch.Tensor]:
        """The model's state with the averaged submodule's weights in place (what `ema.safetensors` holds)."""
        full = self.model.state_dict()
        prefix = f"{self.ema_of}." if self.ema_of else ""
        full.update({prefix + k: v for k, v in self.ema.module.state_dict().items()})
        return full

    # -- checkpoint files -------------------------------------------------------------------------------
    def save(self, path: Path, *, family: str, config: dict, rank_states: list[dict]) -> Path:
        return save_checkpoint(path, family=family, config=config, model=self.model,
                               ema=self.ema_state_dict() if self.ema is not None else None,
                               train_state=self.state_dict(rank_states))

    def load(self, path: Path, rank: int = 0, seed: int = 0) -> None:
        path = Path(path)
        self.model.load_state_dict(load_file(path / "model.safetensors"))
        if self.ema is not None:
            prefix = f"{self.ema_of}." if self.ema_of else ""
            saved = load_file(path / "ema.safetensors")
            self.ema.module.load_state_dict({k.removeprefix(prefix): v for k, v in saved.items()
                                             if k.startswith(prefix)})
        self.load_state_dict(load_train_state(path), rank, seed)
