"""Meta-training of ProtoNets and MAML on episodes, run by any Runtime (local or Ray Train: every worker draws
its own task batch, gradients are averaged across workers)."""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from genlab.core.distributed import all_reduce_grads_, broadcast_buffers_
from genlab.core.harness import fit
from genlab.core.runtime import Runtime
from genlab.core.seeding import seed_everything
from genlab.core.train_state import TrainState
from genlab.data.episodes import Episode, EpisodeSampler, MixedEpisodeSampler, augment, random_affine
from genlab.eval.fewshot import mean_ci95
from genlab.meta.config import MetaConfig, parse_task
from genlab.meta.encoders import Conv4
from genlab.meta.maml import MAML
from genlab.meta.protonet import ProtoNet

log = logging.getLogger(__name__)
FAMILY = "meta"


def build_learner(cfg: MetaConfig) -> nn.Module:
    if cfg.algo in ("protonet", "pretrain"):  # pretrain: the features of a classifier, tested as a ProtoNet
        return ProtoNet(Conv4(hidden=cfg.hidden))
    if cfg.algo == "maml":
        return MAML(Conv4(hidden=cfg.hidden, n_classes=cfg.n_way, running_stats=False), cfg.inner_lr,
                    cfg.inner_steps, cfg.first_order)
    raise ValueError(f"unknown algo {cfg.algo!r}; choose protonet, maml or pretrain")


# ALGO LOGIC
def episode_loss(learner: nn.Module, ep: Episode, inner_steps: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Query cross-entropy and accuracy of one episode (MAML adapts on the support set first, with
    `inner_steps` steps, default its own)."""
    if isinstance(learner, MAML):
        return learner.episode_loss(ep.support, ep.support_labels, ep.query, ep.query_labels, steps=inner_steps)
    logits = learner(ep.support, ep.support_labels, ep.query, ep.n_way)
    return F.cross_entropy(logits, ep.query_labels), (logits.argmax(1) == ep.query_labels).float().mean()


def classify_loss(learner: ProtoNet, head: nn.Linear, x: torch.Tensor, y: torch.Tensor) -> tuple:
    """Pretraining baseline: plain cross-entropy over all training classes on the ProtoNet's encoder."""
    logits = head(learner.encoder(x))
    return F.cross_entropy(logits, y), (logits.argmax(1) == y).float().mean()


# END ALGO LOGIC


def training_sampler(cfg: MetaConfig, splits: dict):
    """Episodes (or, for pretrain, labelled batches) from the training classes; with `handwritten_fraction`,
    that share from the hand-drawn classes and the rest from the rendered glyphs."""
    f = cfg.data.handwritten_fraction
    if f <= 0:
        return EpisodeSampler(splits["train"], cfg.n_way, cfg.k_shot, cfg.n_query, cfg.rotations)
    if "train_handwritten" not in splits:
        raise ValueError(f"--train.data.handwritten-fraction needs hand-drawn training classes; benchmark "
                         f"{cfg.data.benchmark!r} has none (use omniglot_cross or omniglot_all)")
    parts = [EpisodeSampler(splits[k], cfg.n_way, cfg.k_shot, cfg.n_query, cfg.rotations)
             for k in ("train_handwritten", "train_glyphs")]
    return MixedEpisodeSampler(parts, [f, 1 - f])


def tta_logits(learner: ProtoNet, ep: Episode, copies: int, generator: torch.Generator) -> torch.Tensor:
    """ProtoNet logits with each embedding the mean over the image and `copies` random affine warps of it."""
    x = torch.cat([ep.support, ep.query])
    warped = [x] + [random_affine(x, generator) for _ in range(copies)]
    z = learner.encoder(torch.cat(warped)).view(copies + 1, len(x), -1).mean(0)
    return learner.logits(z, ep.support_labels, ep.n_way)


def evaluate(learner: nn.Module, sampler: EpisodeSampler, episodes: int, seed: int,
             inner_steps: int | None = None, tta: int = 0) -> tuple:
    """Mean query accuracy over `episodes` seeded episodes and its 95% CI half-width; with `tta` > 0 (ProtoNet)
    test-time augmented, on the same episodes as without."""
    gen, warps = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
    device = next(learner.parameters()).device
    if tta and not isinstance(learner, ProtoNet):
        raise ValueError("test-time augmentation (--train.test-augment) is for ProtoNets and the pretrain baseline")
    score = ((lambda ep: (tta_logits(learner, ep, tta, warps).argmax(1) == ep.query_labels).float().mean()) if tta else
             (lambda ep: episode_loss(learner, ep, inner_steps)[1]))
    learner.eval()
    with torch.no_grad():
        accs = [float(score(sampler.sample(gen).to(device))) for _ in range(episodes)]
    learner.train()
    return mean_ci95(accs)


def _check_maml_way(cfg: MetaConfig, n_way: int) -> None:
    if cfg.algo == "maml" and n_way != cfg.n_way:
        raise ValueError(f"MAML's head has {cfg.n_way} outputs; it cannot be tested {n_way}-way (train with "
                         f"--train.n-way {n_way}, or drop that task from --train.test-tasks)")


def train(cfg: MetaConfig, rt: Runtime, test=None) -> dict:
    """Meta-train on episodes; every `eval_every` meta-updates rank 0 validates and checkpoints (an "epoch" of
    the harness). Data parallel over task batches: each rank draws its own tasks, gradients are averaged
    explicitly (MAML's functional forward bypasses DDP's hooks), BatchNorm statistics follow rank 0."""
    from genlab.meta.data import load_splits

    seed_everything(cfg.seed + 1000 * rt.rank)
    splits = load_splits(cfg.data)
    for task in cfg.test_tasks:
        _check_maml_way(cfg, parse_task(task)[0])
    if cfg.test_augment and cfg.algo == "maml":
        raise ValueError("--train.test-augment averages ProtoNet embeddings over warps; MAML adapts a head instead "
                         "(drop the flag for MAML)")
    train_sampler = training_sampler(cfg, splits)
    val_sampler = EpisodeSampler(splits["val"], cfg.n_way if cfg.algo == "maml" else 5, cfg.k_shot, cfg.n_query)
    learner = build_learner(cfg)
    # pretrain: a linear head over every training class (a quarter turn is a class), dropped after training
    head = nn.Linear(cfg.hidden, train_sampler.num_classes) if cfg.algo == "pretrain" else None
    params = [*learner.parameters(), *(head.parameters() if head is not None else [])]
    opt = torch.optim.Adam(params, lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.episodes, eta_min=cfg.lr * 0.05)
    episodes = torch.Generator().manual_seed(cfg.seed * 7919 + rt.rank)
    state = TrainState(learner, {"opt": opt}, {"sched": sched}, generators={"episodes": episodes}, ddp=(),
                       aux={"head": head} if head is not None else None)
    batch_images = cfg.n_way * (cfg.k_shot + cfg.n_query)  # pretrain: as many images per step as an episode
    if rt.is_main:
        log.info("meta-train %d classes (%d groups), val %d, test %d", splits["train"].num_classes,
                 len(splits["train"].groups), splits["val"].num_classes, splits["test"].num_classes)

    def step(_batch) -> dict:
        # ALGO LOGIC: one meta-update on a batch of tasks
        opt.zero_grad(set_to_none=True)
        loss_sum, acc_sum = 0.0, 0.0
        for _ in range(cfg.tasks_per_batch):
            if head is not None:
                x, y = train_sampler.sample_batch(batch_images, episodes)
                x = random_affine(x, episodes) if cfg.augment else x
                loss, acc = classify_loss(learner, head, x.to(rt.device), y.to(rt.device))
            else:
                ep = train_sampler.sample(episodes)
                loss, acc = episode_loss(learner, (augment(ep, episodes) if cfg.augment else ep).to(rt.device))
            (loss / cfg.tasks_per_batch).backward()
            loss_sum, acc_sum = loss_sum + loss.item(), acc_sum + acc.item()
        for m in (learner, head):
            if m is not None:
                all_reduce_grads_(m)
        opt.step()
        sched.step()
        broadcast_buffers_(learner)
        return {"loss": loss_sum / cfg.tasks_per_batch, "acc": acc_sum / cfg.tasks_per_batch}

    def eval_fn() -> dict:
        val_acc, val_ci = evaluate(learner, val_sampler, cfg.val_episodes, seed=1, inner_steps=cfg.eval_inner_steps)
        return {"val/acc": val_acc, "val/ci95": val_ci}

    return fit(rt, state, step, family=FAMILY, config=cfg, total_steps=cfg.episodes,
               steps_per_epoch=cfg.eval_every, eval_fn=eval_fn,
               final_fn=lambda: test_accuracy(cfg, learner, splits["test"]), items="episodes",
               items_per_step=cfg.tasks_per_batch * rt.world_size, progress=cfg.progress, desc=cfg.algo)


def test_accuracy(cfg: MetaConfig, learner: nn.Module, test_set) -> dict:
    """Accuracy +- 95% CI on `cfg.test_episodes` episodes (seed `cfg.test_seed`) of each task in `cfg.test_tasks`
    (no rotations)."""
    out = {}
    for task in cfg.test_tasks:
        way, shot = parse_task(task)
        sampler = EpisodeSampler(test_set, way, shot, cfg.n_query)
        acc, ci = evaluate(learner, sampler, cfg.test_episodes, seed=cfg.test_seed, inner_steps=cfg.eval_inner_steps)
        out |= {f"test/{task}_acc": acc, f"test/{task}_ci95": ci}
        log.info("test %s: %.4f +- %.4f (%d episodes)", task, acc, ci, cfg.test_episodes)
        if cfg.test_augment:
            acc, ci = evaluate(learner, sampler, cfg.test_episodes, seed=cfg.test_seed, tta=cfg.test_augment)
            out |= {f"test/{task}_tta_acc": acc, f"test/{task}_tta_ci95": ci}
            log.info("test %s, %d warps averaged: %.4f +- %.4f", task, cfg.test_augment, acc, ci)
    return out
