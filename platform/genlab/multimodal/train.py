"""Train an open_clip CLIP on captioned canvases, run by any Runtime (local or Ray Train workers).

The loss is open_clip's `ClipLoss` with `local_loss` and `gather_with_grad`: each rank scores its own images
against every rank's captions (and back), so N workers see the same negatives as one worker with the global
batch; with `hard_negatives`, each image is also scored against a caption of the same words that does not fit it
(`genlab.data.captions.hard_negative`, `genlab.multimodal.loss`). The temperature is learned and clamped to
<= 100 after each step, as open_clip's trainer does.
"""

from __future__ import annotations

import logging
import math

import torch

from genlab.core import loop
from genlab.core.harness import fit
from genlab.core.runtime import Runtime
from genlab.core.seeding import seed_everything
from genlab.core.train_state import TrainState
from genlab.data.captions import hard_negative_tokens
from genlab.data.mnist import load_dataset
from genlab.multimodal.config import ClipConfig
from genlab.multimodal.loss import HardNegativeClipLoss
from genlab.multimodal.models import FAMILY, create_clip, prepare_images

log = logging.getLogger(__name__)
MAX_LOGIT_SCALE = math.log(100)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """open_clip's split: no decay on gains, biases, 1-d parameters and the temperature."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]


def train(cfg: ClipConfig, rt: Runtime, test=None) -> dict:
    seed_everything(cfg.seed + 1000 * rt.rank)
    model, _, tokenizer = create_clip(cfg.model)
    context = model.context_length
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
    steps_per_epoch = loop.steps_per_epoch(rt.num_examples("train"), cfg.batch_size, cfg.max_steps_per_epoch)
    sched = loop.warmup_cosine(opt, steps_per_epoch * cfg.epochs, cfg.warmup_steps)
    state = TrainState(model, {"optimizer": opt}, {"scheduler": sched})
    loss_fn = HardNegativeClipLoss(rank=rt.rank, world_size=rt.world_size)
    evaluation = ClipEvaluation(cfg, tokenizer, rt.device)

    def step(batch) -> dict[str, torch.Tensor]:
        # ALGO LOGIC: symmetric InfoNCE over the global batch, learnable temperature
        images, tokens = batch
        texts = tokens[:, :context]
        if cfg.hard_negatives:  # one pass of the text tower over captions and negatives
            texts = torch.cat([texts, hard_negative_tokens(tokens)[:, :context]])
        with rt.autocast():
            image_features, text_features, logit_scale = state.module()(prepare_images(images, model), texts)
            negatives = text_features[len(images):] if cfg.hard_negatives else None
            loss = loss_fn(image_features, text_features[:len(images)], logit_scale, negatives)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip or float("inf"))
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, MAX_LOGIT_SCALE)
        return {"loss": loss.detach(), "logit_scale": logit_scale.detach(), "grad_norm": grad_norm}

    return fit(rt, state, step, family=FAMILY, config=cfg, total_steps=steps_per_epoch * cfg.epochs,
               steps_per_epoch=steps_per_epoch, batch_size=cfg.batch_size, eval_fn=lambda: evaluation.epoch(model),
               final_fn=lambda: evaluation.final(model, rt.run_dir), items="pairs", log_every=cfg.log_every,
               progress=cfg.progress,
               desc=cfg.run_name())


class ClipEvaluation:
    """Rank 0's evaluation: zero-shot on plain MNIST / Fashion-MNIST, retrieval on the held-out caption splits."""

    def __init__(self, cfg: ClipConfig, tokenizer, device):
        self.cfg, self.tokenizer, self.device = cfg, tokenizer, device
        self._data: dict = {}

    def _test(self, name: str):
        if name not in self._data:
            if name in ("mnist", "fashion_mnist"):
                self._data[name] = load_dataset(name, "test")
            else:
                from genlab.data.captions import read_caption_table
                from genlab.data.shards import ensure_shards

                self._data[name] = read_caption_table(ensure_shards(self.cfg.dataset, name))
        return self._data[name]

    def epoch(self, model) -> dict:
        from genlab.eval.retrieval import recall_at_k, zero_shot_accuracy
        from genlab.multimodal.models import encode_images, encode_texts

        out, n = {}, self.cfg.eval_images
        for name in ("mnist", "fashion_mnist"):
            images, labels = self._test(name)
            out[f"eval/zero_shot_{name}"] = zero_shot_accuracy(model, self.tokenizer, name, images[:n], labels[:n],
                                                               self.device)["top1"]
        held = self._test("test_combos")
        k = min(n, 1000)
        r = recall_at_k(encode_images(model, held["images"][:k], device=self.device),
                        encode_texts(model, self.tokenizer, held["captions"][:k], device=self.device))
        out["eval/heldout_combos_text_to_image_R@1"] = r["text_to_image_R@1"]
        model.train()
        return out

    def final(self, model, run_dir) -> dict:
        from genlab.eval.retrieval import attribute_exact, linear_probe, recall_at_k, zero_shot_accuracy
        from genlab.multimodal.models import encode_images, encode_texts

        out = {}
        for name in ("mnist", "fashion_mnist"):
            images, labels = self._test(name)
            n = self.cfg.final_images or len(images)
            images, labels = images[:n], labels[:n]
            res = zero_shot_accuracy(model, self.tokenizer, name, images, labels, self.device)
            out |= {f"test/zero_shot_{name}_{k}": v for k, v in res.items()}
            if self.cfg.probe_images:
                train_images, train_labels = load_dataset(name, "train")
                idx = torch.randperm(len(train_images), generator=torch.Generator().manual_seed(self.cfg.seed))
                idx = idx[:self.cfg.probe_images]
                out[f"test/linear_probe_{name}"] = linear_probe(
                    encode_images(model, train_images[idx], device=self.device), train_labels[idx],
                    encode_images(model, images, device=self.device), labels, self.cfg.seed)
        for split in ("test_combos", "test_templates"):
            held = self._test(split)
            img = encode_images(model, held["images"], device=self.device)
            txt = encode_texts(model, self.tokenizer, held["captions"], device=self.device)
            out |= {f"test/{split}_{k}": v for k, v in recall_at_k(img, txt).items()}
            out |= {f"test/{split}_{k}": v for k, v in attribute_exact(img, txt, held["attrs"]).items()}
            if self.cfg.figures:
                from genlab.multimodal.figures import retrieval_grid, similarity_matrix

                similarity_matrix(img[:12], txt[:12], held["images"][:12], held["captions"][:12],
                                  run_dir / f"similarity_{split}.png")
                retrieval_grid(img, txt[:6], held["images"], held["captions"][:6], run_dir / f"retrieval_{split}.png")
        model.train()
        return out
