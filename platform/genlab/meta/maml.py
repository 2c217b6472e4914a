"""MAML (Finn et al. 2017), second- and first-order, for any model, through torch.func.functional_call:
the adapted ("fast") weights are a dict of tensors, so no layer needs a hand-written functional forward."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

Params = dict[str, torch.Tensor]


class MAML(nn.Module):
    """`adapt(x, y)` takes `inner_steps` SGD steps from the meta-parameters on (x, y) and returns the fast
    weights; `forward(x, params)` runs the model with them. Second order keeps the graph of the inner steps
    (create_graph=True); first order treats the inner gradients as constants."""

    def __init__(self, model: nn.Module, inner_lr: float = 0.4, inner_steps: int = 1, first_order: bool = False):
        super().__init__()
        self.model, self.inner_lr, self.inner_steps, self.first_order = model, inner_lr, inner_steps, first_order

    def params(self) -> Params:
        return dict(self.model.named_parameters())

    def forward(self, x: torch.Tensor, params: Params | None = None) -> torch.Tensor:
        if params is None:
            return self.model(x)
        return functional_call(self.model, {**dict(self.model.named_buffers()), **params}, (x,))

    def adapt(self, x: torch.Tensor, y: torch.Tensor, steps: int | None = None, lr: float | None = None,
              params: Params | None = None) -> Params:
        params = self.params() if params is None else params
        lr = self.inner_lr if lr is None else lr
        # Under no_grad (evaluation) the inner loop still needs gradients, but no graph of them.
        second_order = not self.first_order and torch.is_grad_enabled()
        with torch.enable_grad():
            for _ in range(self.inner_steps if steps is None else steps):
                loss = F.cross_entropy(self(x, params), y)
                grads = torch.autograd.grad(loss, list(params.values()),
                                            create_graph=second_order)
                params = {name: p - lr * g for (name, p), g in zip(params.items(), grads)}
        return params

    def episode_loss(self, support, support_labels, query, query_labels,
                     steps: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Query loss after adapting on the support set (`steps` inner steps, default `inner_steps`), and the
        query accuracy."""
        fast = self.adapt(support, support_labels, steps=steps)
        logits = self(query, fast)
        return F.cross_entropy(logits, query_labels), (logits.argmax(1) == query_labels).float().mean()
