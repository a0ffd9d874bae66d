"""SynFlow (Tanaka et al., NeurIPS 2020): data-free iterative synaptic-flow pruning at initialisation.

On a float64 copy of the model whose parameters and buffers are replaced by their absolute values (the
"linearised" network; BN in eval mode, so with the init statistics it is the affine map |γ|x + |β|),
an all-ones input of the data's shape gives R = 1ᵀ(Π|W_l|)1 = Σ outputs; the score of weight θ is
|θ ⊙ ∂R/∂θ| with θ the masked |w| (pruned weights score 0). Over ``rounds`` rounds (100 in the paper)
the masks keep the global top d_k·N scores, with the exponential schedule d_k = d^{k/R}
(``schedules.exponential_densities``), re-scoring after each round. The model itself is never
touched (signs and weights stay), only its masks are set. float64 avoids the overflow of R in deep
nets, as Synaptic-Flow does. Then the sparse net trains from scratch like SNIP.
"""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch
from torch import nn

from experiments.distributed import broadcast_
from experiments.errors import ConfigError
from experiments.sparsity.masks import keep_top, mask_modules, original_weights
from experiments.sparsity.schedules import exponential_densities

from .masked_method import MaskedMethod

if TYPE_CHECKING:  # pragma: no cover
    from experiments.context import StageContext


def linearized_copy(model: nn.Module) -> nn.Module:
    """A float64, eval-mode copy with every floating parameter and buffer replaced by its absolute value."""
    probe = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for t in list(probe.parameters()) + list(probe.buffers()):
            if t.is_floating_point():
                t.abs_()
    return probe


def synflow_scores(probe: nn.Module, example_input: torch.Tensor) -> dict[str, torch.Tensor]:
    """|θ ⊙ ∂R/∂θ| per prunable layer of a linearised ``probe`` (R = sum of its outputs on all-ones input).

    Under a mask parametrization θ = |w| ⊙ m and ∂R/∂w = m ⊙ ∂R/∂ŵ, so pruned weights score exactly 0.
    """
    weights = original_weights(probe)
    x = torch.ones_like(example_input, dtype=torch.float64)
    R = probe(x).sum()
    grads = torch.autograd.grad(R, list(weights.values()), allow_unused=True)
    return {name: (w.detach() * g).abs() if g is not None else torch.zeros_like(w)
            for (name, w), g in zip(weights.items(), grads)}


def synflow_masks(model: nn.Module, example_input: torch.Tensor, density: float, rounds: int = 100
                  ) -> dict[str, torch.Tensor]:
    """Iterative SynFlow on a masked ``model`` (``BinaryMask`` on every prunable layer): the final masks.

    Each round re-scores with the current masks and keeps the global top d_k·N, never reviving a
    pruned weight (pruned ones rank below every active one)."""
    probe = linearized_copy(model)
    masks = mask_modules(probe)
    for d in exponential_densities(density, rounds):
        scores = synflow_scores(probe, example_input)
        active = {n: m.current_mask() for n, m in masks.items()}
        ranked = {n: torch.where(active[n], s, torch.full_like(s, -1.0)) for n, s in scores.items()}
        for n, keep in keep_top(ranked, d).items():
            masks[n].set_mask(keep)
    return {n: m.current_mask().clone() for n, m in masks.items()}


class SynFlow(MaskedMethod):
    """``method=synflow``: data-free iterative pruning at initialisation, then training from scratch."""

    def __init__(self, name: str, target_sparsity: float, rounds: int = 100, from_scratch: bool = True, **recipe):
        super().__init__(name=name, target_sparsity=target_sparsity, from_scratch=from_scratch, **recipe)
        if int(rounds) < 1:
            raise ConfigError(f"method.rounds={rounds} must be >= 1")
        self.rounds = int(rounds)

    def initial_masks(self, ctx: "StageContext") -> dict[str, torch.Tensor]:
        example = ctx.data.example_input(1).to(ctx.device)
        masks = synflow_masks(ctx.model, example, 1.0 - self.target_sparsity, self.rounds)
        ctx.metrics["synflow_rounds"] = self.rounds
        # deterministic on one device; a broadcast keeps ranks identical even if float64 sums differ
        return {n: broadcast_(m.to(torch.uint8)).bool() for n, m in masks.items()}
