"""GraNet (Liu et al., NeurIPS 2021): GMP's global cubic schedule + zero-cost neuroregeneration.

At every pruning step of the GMP schedule (``CubicSchedule`` + ``gmp.CubicPruning``: s_i → s_f over the first
``prune_end_fraction`` of the fit, global |w| ranking), and right after it, each layer regenerates:
drop ⌈r·n_active⌉ of its smallest-|w| active weights and grow as many inactive ones (inactive after the
drop) with the largest dense |∂L/∂ŵ|; r is cosine-decayed from ``regen_rate`` to ``min_regen_rate`` over
all fit steps (``schedules.granet_regen_rate``; GraNet's ``CosineDecay``). Weights removed by the
schedule's pruning and regrown start at zero (with zero momentum), as in GraNet where the pruning step
zeroes them before regeneration; a weight dropped by the regeneration itself and picked straight back
keeps its value. The per-layer counts are unchanged by regeneration, so the global sparsity follows
the GMP schedule exactly.

``initial_sparsity`` = 0 (default) is the dense-start "post-training" variant that fits our protocol
(every method starts from the same pretrained checkpoint); GraNet's sparse-start variant uses 0.5.
GraNet's public CIFAR code keeps regenerating after the schedule ends (every ΔT steps to the end of
training); ``regen_after_schedule: true`` does that, the default stops with the schedule (its Algorithm 1).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from experiments.errors import ConfigError
from experiments.sparsity.drop_grow import dense_gradients, drop_and_grow_layers
from experiments.sparsity.mask_schedules import CubicSchedule
from experiments.sparsity.masks import current_masks, original_weights
from experiments.sparsity.schedules import granet_regen_rate

from .gmp import CubicPruning, magnitude_start
from .masked_method import MaskedMethod

if TYPE_CHECKING:  # pragma: no cover
    from experiments.context import StageContext


class Regeneration:
    """Mask rule: at every step of the cubic ``schedule`` (after its pruning) and, with ``after_schedule``, every
    period after it, each layer drops ⌈r·n_active⌉ smallest |w| and grows as many largest |∂L/∂ŵ| among the
    inactive; r = ``granet_regen_rate`` over the fit's T."""

    uses_dense_grad = True

    def __init__(self, schedule: CubicSchedule, rate: float = 0.5, min_rate: float = 0.005,
                 after_schedule: bool = False):
        if not 0.0 <= float(min_rate) <= float(rate) <= 1.0:
            raise ConfigError(f"need 0 <= method.min_regen_rate ({min_rate}) <= method.regen_rate ({rate}) <= 1")
        self.schedule = schedule
        self.rate, self.min_rate, self.after_schedule = float(rate), float(min_rate), bool(after_schedule)
        self.last_rate = 0.0
        self.last_dropped = 0      # weights dropped by the last regeneration
        self.last_regrown = 0      # of those slots, weights grown that were inactive before the regeneration
        self.regrown_total = 0

    def is_step(self, step: int) -> bool:
        return self.schedule.is_step(step) or (self.after_schedule and self.schedule.is_after(step))

    def rate_at(self, step: int) -> float:
        return granet_regen_rate(step, int(self.schedule.clock.total or 0), self.rate, self.min_rate)

    def apply(self, model: nn.Module, optimizer: torch.optim.Optimizer, masks: dict[str, nn.Module],
              step: int) -> None:
        grads = dense_gradients(masks)
        weights, current = original_weights(model), current_masks(model)
        rate = self.rate_at(step)
        counts = {name: math.ceil(rate * int(mask.sum())) for name, mask in current.items()}
        dropped, regrown = drop_and_grow_layers(model, optimizer, weights, current, grads, counts)
        self.last_rate, self.last_dropped, self.last_regrown = rate, dropped, regrown
        self.regrown_total += regrown

    def metrics(self) -> dict:
        return {"regen_rate": self.last_rate, "regen_dropped": self.last_dropped,
                "regen_grown_new": self.last_regrown, "regen_grown_total": self.regrown_total}

    def state_dict(self) -> dict:
        return {"last_rate": self.last_rate, "last_dropped": self.last_dropped, "last_regrown": self.last_regrown,
                "regrown_total": self.regrown_total}

    def load_state_dict(self, state: dict) -> None:
        self.last_rate = float(state["last_rate"])
        self.last_dropped, self.last_regrown = int(state["last_dropped"]), int(state["last_regrown"])
        self.regrown_total = int(state["regrown_total"])


class GraNet(MaskedMethod):
    """``method=granet``: :class:`CubicPruning` then :class:`Regeneration`, both on one cubic schedule."""

    def __init__(self, name: str, target_sparsity: float, initial_sparsity: float = 0.0, prune_every: int = 100,
                 prune_start_fraction: float = 0.0, prune_end_fraction: float = 0.75, regen_rate: float = 0.5,
                 min_regen_rate: float = 0.005, regen_after_schedule: bool = False, **recipe):
        super().__init__(name=name, target_sparsity=target_sparsity, **recipe)
        self.schedule = CubicSchedule(self.clock, self.target_sparsity, initial_sparsity, prune_every,
                                      prune_start_fraction, prune_end_fraction)
        self.pruning = CubicPruning(self.schedule)
        self.regeneration = Regeneration(self.schedule, regen_rate, min_regen_rate, regen_after_schedule)
        self.rules = [self.pruning, self.regeneration]

    def initial_masks(self, ctx: "StageContext") -> dict[str, torch.Tensor] | None:
        return magnitude_start(ctx, self.schedule.initial)
