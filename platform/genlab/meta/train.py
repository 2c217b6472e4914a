"""Meta-training of ProtoNets and MAML on episodes, run by any Runtime (local or Ray Train: every worker draws
its own task batch, gradients are averaged across workers)."""

from __future__ import annotations

import logging
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from genlab.core.checkpoint import load_train_state, load_weights, save_checkpoint
from genlab.core.config import to_dict
from genlab.core.runtime import Runtime
from genlab.core.seeding import rng_state, seed_everything, set_rng_state
from genlab.data.episodes import Episode, EpisodeSampler
from genlab.eval.fewshot import mean_ci95
from genlab.meta.config import MetaConfig, parse_task
from genlab.meta.encoders import Conv4
from genlab.meta.maml import MAML
from genlab.meta.protonet import ProtoNet

log = logging.getLogger(__name__)
FAMILY = "meta"


def build_learner(cfg: MetaConfig) -> nn.Module:
    if cfg.algo == "protonet":
        return ProtoNet(Conv4(hidden=cfg.hidden))
    if cfg.algo == "maml":
        return MAML(Conv4(hidden=cfg.hidden, n_classes=cfg.n_way, running_stats=False), cfg.inner_lr,
                    cfg.inner_steps, cfg.first_order)
    raise ValueError(f"unknown algo {cfg.algo!r}; choose protonet or maml")


# ALGO LOGIC
def episode_loss(learner: nn.Module, ep: Episode, inner_steps: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Query cross-entropy and accuracy of one episode (MAML adapts on the support set first, with
    `inner_steps` steps, default its own)."""
    if isinstance(learner, MAML):
        return learner.episode_loss(ep.support, ep.support_labels, ep.query, ep.query_labels, steps=inner_steps)
    logits = learner(ep.support, ep.support_labels, ep.query, ep.n_way)
    return F.cross_entropy(logits, ep.query_labels), (logits.argmax(1) == ep.query_labels).float().mean()


def average_gradients(model: nn.Module) -> None:
    """Data parallel over task batches: mean of every gradient across Ray Train workers (MAML's functional
    forward bypasses DDP's hooks, so both algorithms sync explicitly)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        for p in model.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= dist.get_world_size()
# END ALGO LOGIC


def evaluate(learner: nn.Module, sampler: EpisodeSampler, episodes: int, seed: int,
             inner_steps: int | None = None) -> tuple:
    """Mean query accuracy over `episodes` seeded episodes and its 95% CI half-width."""
    gen = torch.Generator().manual_seed(seed)
    device = next(learner.parameters()).device
    learner.eval()
    with torch.no_grad():
        accs = [float(episode_loss(learner, sampler.sample(gen).to(device), inner_steps)[1])
                for _ in range(episodes)]
    learner.train()
    return mean_ci95(accs)


def _check_maml_way(cfg: MetaConfig, n_way: int) -> None:
    if cfg.algo == "maml" and n_way != cfg.n_way:
        raise ValueError(f"MAML's head has {cfg.n_way} outputs; it cannot be tested {n_way}-way (train with "
                         f"--train.n-way {n_way}, or drop that task from --train.test-tasks)")


def train(cfg: MetaConfig, rt: Runtime, test=None) -> dict:
    from genlab.meta.data import load_splits

    seed_everything(cfg.seed + 1000 * rt.rank)
    splits = load_splits(cfg.data)
    for task in cfg.test_tasks:
        _check_maml_way(cfg, parse_task(task)[0])
    train_sampler = EpisodeSampler(splits["train"], cfg.n_way, cfg.k_shot, cfg.n_query, cfg.rotations)
    val_sampler = EpisodeSampler(splits["val"], cfg.n_way if cfg.algo == "maml" else 5, cfg.k_shot, cfg.n_query)
    learner = build_learner(cfg).to(rt.device)
    opt = torch.optim.Adam(learner.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.episodes, eta_min=cfg.lr * 0.05)
    gen = torch.Generator().manual_seed(cfg.seed * 7919 + rt.rank)
    step = 0
    if (ckpt := rt.latest_checkpoint()) is not None:
        state = load_train_state(ckpt)
        load_weights(learner, ckpt)
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        set_rng_state(state["rng"])
        gen.set_state(state["episode_rng"])
        step = state["step"]
        log.info("resumed from %s at meta-update %d", ckpt, step)
    if rt.is_main:
        log.info("meta-train %d classes (%d groups), val %d, test %d", splits["train"].num_classes,
                 len(splits["train"].groups), splits["val"].num_classes, splits["test"].num_classes)
    metrics: dict = {}
    window_loss, window_acc, n, t0 = 0.0, 0.0, 0, time.perf_counter()
    bar = tqdm(total=cfg.episodes, initial=step, desc=cfg.algo, disable=not (cfg.progress and rt.is_main))
    while step < cfg.episodes:
        opt.zero_grad(set_to_none=True)
        for _ in range(cfg.tasks_per_batch):
            loss, acc = episode_loss(learner, train_sampler.sample(gen).to(rt.device))
            (loss / cfg.tasks_per_batch).backward()
            window_loss, window_acc, n = window_loss + loss.item(), window_acc + acc.item(), n + 1
        average_gradients(learner)
        opt.step()
        sched.step()
        step += 1
        bar.update()
        if step % cfg.eval_every == 0 or step == cfg.episodes:
            elapsed = time.perf_counter() - t0
            metrics = {"step": step, "train/loss": window_loss / n, "train/acc": window_acc / n,
                       "lr": sched.get_last_lr()[0], "perf/episodes_per_s": n * rt.world_size / elapsed}
            checkpoint = None
            if rt.is_main:  # only rank 0's metrics are kept: the other ranks skip validation
                val_acc, val_ci = evaluate(learner, val_sampler, cfg.val_episodes, seed=1,
                                           inner_steps=cfg.eval_inner_steps)
                metrics |= {"val/acc": val_acc, "val/ci95": val_ci}
                bar.set_postfix(loss=f"{window_loss / n:.3f}", val=f"{val_acc:.3f}", refresh=False)
                checkpoint = save_checkpoint(rt.checkpoint_dir(step), family=FAMILY, config=to_dict(cfg),
                                             model=learner, train_state={
                                                 "opt": opt.state_dict(), "sched": sched.state_dict(),
                                                 "rng": rng_state(), "episode_rng": gen.get_state(), "step": step})
            rt.report(metrics, checkpoint=checkpoint)
            window_loss, window_acc, n, t0 = 0.0, 0.0, 0, time.perf_counter()
    bar.close()
    final = test_accuracy(cfg, learner, splits["test"]) if rt.is_main else {}
    rt.report({"step": step, **final})  # every rank: Ray Train's report is collective
    metrics |= final
    return metrics


def test_accuracy(cfg: MetaConfig, learner: nn.Module, test_set) -> dict:
    """Accuracy +- 95% CI on `cfg.test_episodes` episodes of each task in `cfg.test_tasks` (no rotations)."""
    out = {}
    for task in cfg.test_tasks:
        way, shot = parse_task(task)
        sampler = EpisodeSampler(test_set, way, shot, cfg.n_query)
        acc, ci = evaluate(learner, sampler, cfg.test_episodes, seed=2, inner_steps=cfg.eval_inner_steps)
        out |= {f"test/{task}_acc": acc, f"test/{task}_ci95": ci}
        log.info("test %s: %.4f +- %.4f (%d episodes)", task, acc, ci, cfg.test_episodes)
    return out
