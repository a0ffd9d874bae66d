"""SNIP (Lee et al., ICLR 2019): connection sensitivity at initialisation, one global top-k.

score_i = |∂L/∂c_i| at c = 1 for ŵ = c ⊙ w, i.e. |w_i · ∂L/∂w_i| (here |ŵ ⊙ ∂L/∂ŵ|, the same at an
all-ones mask), with ∂L/∂w summed over ``batches`` labelled training minibatches (1 in the paper;
Synaptic-Flow's SNIP sums over its batches likewise). The global top (1 − S)·N scores are kept, then the
sparse net trains from scratch with the pretrain recipe for the shared fine-tune epoch budget.
Scores are computed on a copy in training mode (batch statistics, as the TF original), so the model's
BN running statistics are untouched; under DDP the scores are averaged over ranks.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from experiments.distributed import all_reduce_
from experiments.errors import ConfigError
from experiments.sparsity.masks import original_weights

from .masked_method import MaskedMethod

if TYPE_CHECKING:  # pragma: no cover
    from experiments.context import StageContext


def snip_scores(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """|w ⊙ Σ_b ∂L_b/∂w| per prunable layer (gradients of the mean cross-entropy of each batch).

    Under a mask parametrization w is the original weight and ∂L/∂w = m ⊙ ∂L/∂ŵ, so the score is
    |ŵ ⊙ ∂L/∂ŵ| (zero on pruned weights). Leaves the model's gradients as it found them (cleared).
    """
    weights = original_weights(model)
    params = list(weights.values())
    total = [torch.zeros_like(p) for p in params]
    n = 0
    for x, y in batches:
        loss = F.cross_entropy(model(x), y)
        for acc, g in zip(total, torch.autograd.grad(loss, params, allow_unused=True)):
            if g is not None:
                acc.add_(g)
        n += 1
    if n == 0:
        raise ValueError("SNIP needs at least one training batch")
    return {name: (w.detach() * g).abs() for (name, w), g in zip(weights.items(), total)}


class SNIP(MaskedMethod):
    """``method=snip``: prune at initialisation by |g ⊙ w|, then train the sparse net."""

    one_shot = True

    def __init__(self, name: str, target_sparsity: float, batches: int = 1, batch_size: int = 128,
                 from_scratch: bool = True, **recipe):
        super().__init__(name=name, target_sparsity=target_sparsity, from_scratch=from_scratch, **recipe)
        if int(batches) < 1:
            raise ConfigError(f"method.batches={batches} must be >= 1")
        self.batches = int(batches)
        self.batch_size = batch_size

    def scoring_batches(self, ctx: "StageContext"):
        bs = int(self.batch_size)
        loader = ctx.data.loader("train", bs, train=True)
        for i, (x, y) in enumerate(loader):
            if i >= self.batches:
                break
            yield x.to(ctx.device), y.to(ctx.device)

    def initial_masks(self, ctx: "StageContext") -> dict[str, torch.Tensor]:
        probe = ctx.copy_model(ctx.model).train()
        scores = snip_scores(probe, self.scoring_batches(ctx))
        scores = {n: all_reduce_(s, "mean") for n, s in scores.items()}
        ctx.metrics["snip_batches"] = self.batches
        return self.keep(scores, ctx)
