"""GraNet (Liu et al., NeurIPS 2021): GMP's global cubic schedule + zero-cost neuroregeneration.

At every pruning step of the GMP schedule (``gmp.GradualMagnitude``: s_i → s_f over the first
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

from experiments.errors import ConfigError
from experiments.sparsity.drop_grow import dense_gradients, drop_and_grow_layers
from experiments.sparsity.schedules import granet_regen_rate

from .gmp import GradualMagnitude

if TYPE_CHECKING:  # pragma: no cover
    from experiments.train import Trainer


class GraNet(GradualMagnitude):
    """``method=granet``: gradual global magnitude pruning with gradient-based regeneration."""

    uses_dense_grad = True

    def __init__(self, name: str, target_sparsity: float, initial_sparsity: float = 0.0, prune_every: int = 100,
                 prune_start_fraction: float = 0.0, prune_end_fraction: float = 0.75, regen_rate: float = 0.5,
                 min_regen_rate: float = 0.005, regen_after_schedule: bool = False, **base):
        super().__init__(name=name, target_sparsity=target_sparsity, initial_sparsity=initial_sparsity,
                         prune_every=prune_every, prune_start_fraction=prune_start_fraction,
                         prune_end_fraction=prune_end_fraction, **base)
        if not 0.0 <= float(min_regen_rate) <= float(regen_rate) <= 1.0:
            raise ConfigError(f"need 0 <= method.min_regen_rate ({min_regen_rate}) <= method.regen_rate "
                             f"({regen_rate}) <= 1")
        self.regen_rate = float(regen_rate)
        self.min_regen_rate = float(min_regen_rate)
        self.regen_after_schedule = bool(regen_after_schedule)
        self.last_rate = 0.0
        self.last_dropped = 0      # weights dropped by the last regeneration
        self.last_regrown = 0      # of those slots, weights grown that were inactive before the regeneration
        self.regrown_total = 0

    def is_regen_step(self, step: int) -> bool:
        t0, t_end = self.bounds()
        if self.is_prune_step(step):
            return True
        return self.regen_after_schedule and step > t_end and (step - t0) % self.prune_every == 0

    def is_update_step(self, step: int) -> bool:
        return self.is_prune_step(step) or self.is_regen_step(step)

    def rate_at(self, step: int) -> float:
        return granet_regen_rate(step, int(self.total_steps or 0), self.regen_rate, self.min_regen_rate)

    def update_masks(self, trainer: "Trainer", step: int) -> None:
        if self.is_prune_step(step):
            self.prune_to_schedule(trainer, step)
        if self.is_regen_step(step):
            self.regenerate(trainer, step)

    def regenerate(self, trainer: "Trainer", step: int) -> None:
        """Per layer: drop ⌈r·n_active⌉ smallest |w|, grow as many largest |∂L/∂ŵ| among the inactive."""
        grads = dense_gradients(self.masks)
        weights, masks = self.weights_and_masks(trainer.model)
        rate = self.rate_at(step)
        counts = {name: math.ceil(rate * int(mask.sum())) for name, mask in masks.items()}
        dropped, regrown = drop_and_grow_layers(trainer.model, trainer.optimizer, weights, masks, grads, counts)
        self.last_rate, self.last_dropped, self.last_regrown = rate, dropped, regrown
        self.regrown_total += regrown

    def epoch_metrics(self, trainer: "Trainer") -> dict:
        return {**super().epoch_metrics(trainer), "regen_rate": self.last_rate,
                "regen_dropped": self.last_dropped, "regen_grown_new": self.last_regrown,
                "regen_grown_total": self.regrown_total}

    def extra_state(self) -> dict:
        return {**super().extra_state(), "last_rate": self.last_rate, "last_dropped": self.last_dropped,
                "last_regrown": self.last_regrown, "regrown_total": self.regrown_total}

    def load_extra_state(self, state: dict) -> None:
        super().load_extra_state(state)
        self.last_rate = float(state.get("last_rate", 0.0))
        self.last_dropped = int(state.get("last_dropped", 0))
        self.last_regrown = int(state.get("last_regrown", 0))
        self.regrown_total = int(state.get("regrown_total", 0))
