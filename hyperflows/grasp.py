"""GraSP (Wang et al., ICLR 2020): prune at initialisation while preserving gradient flow.

On a class-balanced sample (``samples_per_class`` images of every class from the training set) with
logits divided by a temperature T (200), g = ∇_θ L is taken without a graph, then H g = ∇_θ(gᵀ∇_θ L)
by double back-propagation; the score is −θ ⊙ (H g) and the weights with the *highest* scores are removed
(their removal reduces the gradient norm least, or increases it), i.e. the (1 − S)·N lowest are kept.
Computed on a training-mode copy (batch statistics; the model's BN buffers are untouched); then the
sparse net trains from scratch like SNIP (``recipe: pretrain`` for the shared fine-tune epoch budget).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from experiments.distributed import all_reduce_
from experiments.errors import ConfigError
from experiments.sparsity.masks import original_weights

from .masked_method import MaskedMethod

if TYPE_CHECKING:  # pragma: no cover
    from experiments.context import StageContext


def grasp_scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor, temperature: float = 200.0,
                 chunk: int = 256) -> dict[str, torch.Tensor]:
    """−θ ⊙ (H g) per prunable layer, with L the mean cross-entropy of logits/T over (x, y) (in chunks)."""
    weights = original_weights(model)
    params = list(weights.values())
    n = y.numel()

    def chunk_loss(i: int) -> torch.Tensor:
        xb, yb = x[i:i + chunk], y[i:i + chunk]
        return F.cross_entropy(model(xb) / temperature, yb, reduction="sum") / n

    g = [torch.zeros_like(p) for p in params]
    for i in range(0, n, chunk):
        for acc, gi in zip(g, torch.autograd.grad(chunk_loss(i), params, allow_unused=True)):
            if gi is not None:
                acc.add_(gi)
    hg = [torch.zeros_like(p) for p in params]
    for i in range(0, n, chunk):
        grads = torch.autograd.grad(chunk_loss(i), params, create_graph=True, allow_unused=True)
        z = sum((gi * gs).sum() for gi, gs in zip(grads, g) if gi is not None)
        for acc, h in zip(hg, torch.autograd.grad(z, params, allow_unused=True)):
            if h is not None:
                acc.add_(h)
    return {name: -(w.detach() * h) for (name, w), h in zip(weights.items(), hg)}


def class_balanced_sample(batches, num_classes: int, per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``per_class`` examples of every class met in ``batches`` (fewer if the data runs out)."""
    xs: list[list[torch.Tensor]] = [[] for _ in range(num_classes)]
    for x, y in batches:
        for c in range(num_classes):
            need = per_class - sum(t.shape[0] for t in xs[c])
            if need > 0:
                xs[c].append(x[y == c][:need])
        if all(sum(t.shape[0] for t in xc) >= per_class for xc in xs):
            break
    x = torch.cat([t for xc in xs for t in xc])
    y = torch.cat([torch.full((sum(t.shape[0] for t in xc),), c, dtype=torch.long, device=x.device)
                   for c, xc in enumerate(xs)])
    return x, y


class GraSP(MaskedMethod):
    """``method=grasp``: gradient-signal-preservation pruning at initialisation, then training from scratch."""

    one_shot = True

    def __init__(self, name: str, target_sparsity: float, samples_per_class: int = 10, temperature: float = 200.0,
                 batch_size: int = 128, from_scratch: bool = True, **recipe):
        super().__init__(name=name, target_sparsity=target_sparsity, from_scratch=from_scratch, **recipe)
        if int(samples_per_class) < 1 or float(temperature) <= 0:
            raise ConfigError(f"method.samples_per_class={samples_per_class} must be >= 1 and "
                             f"method.temperature={temperature} > 0")
        self.samples_per_class = int(samples_per_class)
        self.temperature = float(temperature)
        self.batch_size = int(batch_size)   # of the loader the class-balanced sample is drawn from

    def initial_masks(self, ctx: "StageContext") -> dict[str, torch.Tensor]:
        loader = ctx.data.loader("train", self.batch_size, train=True)
        x, y = class_balanced_sample(((xb.to(ctx.device), yb.to(ctx.device)) for xb, yb in loader),
                                     ctx.data.num_classes, self.samples_per_class)
        probe = ctx.copy_model(ctx.model).train()
        scores = grasp_scores(probe, x, y, self.temperature)
        scores = {n: all_reduce_(s, "mean") for n, s in scores.items()}
        ctx.metrics["grasp_samples"] = int(y.numel())
        return self.keep({n: -s for n, s in scores.items()}, ctx)  # drop the highest
