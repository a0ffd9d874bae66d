"""GMP (Zhu & Gupta 2017): gradual global magnitude pruning on the cubic schedule, no regrowth.

Starting from the trained dense model (s_i = 0), every ``prune_every`` steps from t0 to t_end the
masks are recomputed as the global top-(1 − s(t)) of |w| among the still-active weights, with
s(t) = s_f + (s_i − s_f)(1 − (t − t0)/(t_end − t0))³ (``schedules.gmp_sparsity``); t0 and t_end are
fractions of the fit's steps, and t_end itself is always an update step, so the fit ends at exactly
the target. Pruned weights never come back. Global ranking as in GraNet's ``--method GMP``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from experiments.sparsity.drop_grow import global_magnitude_prune
from experiments.sparsity.mask_schedules import CubicSchedule
from experiments.sparsity.masks import (
    apply_masks_,
    current_masks,
    global_magnitude_masks,
    original_weights,
    set_masks,
)

from .masked_method import MaskedMethod

if TYPE_CHECKING:  # pragma: no cover
    from experiments.context import StageContext


class CubicPruning:
    """Mask rule: at each step of ``schedule``, global magnitude prune to s(step) among the active weights;
    zeroes pruned weights and their optimizer moments."""

    uses_dense_grad = False

    def __init__(self, schedule: CubicSchedule):
        self.schedule = schedule
        self.prunes = 0                                   # schedule pruning steps done
        self.scheduled_sparsity = schedule.initial

    def is_step(self, step: int) -> bool:
        return self.schedule.is_step(step)

    def apply(self, model: nn.Module, optimizer: torch.optim.Optimizer, masks: dict[str, nn.Module],
              step: int) -> None:
        weights, current = original_weights(model), current_masks(model)
        self.scheduled_sparsity = self.schedule.sparsity_at(step)
        set_masks(model, global_magnitude_prune(weights, current, 1.0 - self.scheduled_sparsity))
        apply_masks_(model, optimizer)
        self.prunes += 1

    def metrics(self) -> dict:
        return {"scheduled_sparsity": self.scheduled_sparsity, "prune_steps": self.prunes}

    def state_dict(self) -> dict:
        return {"prunes": self.prunes, "scheduled_sparsity": self.scheduled_sparsity}

    def load_state_dict(self, state: dict) -> None:
        self.prunes = int(state["prunes"])
        self.scheduled_sparsity = float(state["scheduled_sparsity"])


def magnitude_start(ctx: "StageContext", sparsity: float) -> dict[str, torch.Tensor] | None:
    """Initial masks of a cubic schedule: dense at s_i = 0, else the global top-(1 − s_i) of |w|."""
    if sparsity <= 0:
        return None
    return global_magnitude_masks(dict(original_weights(ctx.model)), 1.0 - sparsity)


class GradualMagnitude(MaskedMethod):
    """``method=gmp``: a :class:`CubicPruning` rule on a :class:`CubicSchedule` during fine-tuning."""

    def __init__(self, name: str, target_sparsity: float, initial_sparsity: float = 0.0, prune_every: int = 100,
                 prune_start_fraction: float = 0.0, prune_end_fraction: float = 0.75, **recipe):
        super().__init__(name=name, target_sparsity=target_sparsity, **recipe)
        self.schedule = CubicSchedule(self.clock, self.target_sparsity, initial_sparsity, prune_every,
                                      prune_start_fraction, prune_end_fraction)
        self.pruning = CubicPruning(self.schedule)
        self.rules = [self.pruning]

    def initial_masks(self, ctx: "StageContext") -> dict[str, torch.Tensor] | None:
        return magnitude_start(ctx, self.schedule.initial)
