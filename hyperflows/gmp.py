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

from experiments.errors import ConfigError
from experiments.sparsity.drop_grow import global_magnitude_prune
from experiments.sparsity.masks import apply_masks_, global_magnitude_masks, original_weights, set_masks
from experiments.sparsity.schedules import gmp_sparsity

from .scheduled_method import ScheduledMaskedMethod

if TYPE_CHECKING:  # pragma: no cover
    from experiments.context import StageContext
    from experiments.train import Trainer


class GradualMagnitude(ScheduledMaskedMethod):
    """``method=gmp``: cubic-schedule global magnitude pruning during fine-tuning."""

    def __init__(self, name: str, target_sparsity: float, initial_sparsity: float = 0.0, prune_every: int = 100,
                 prune_start_fraction: float = 0.0, prune_end_fraction: float = 0.75, **base):
        super().__init__(name=name, target_sparsity=target_sparsity, **base)
        if not 0.0 <= float(initial_sparsity) <= self.target_sparsity:
            raise ConfigError(f"method.initial_sparsity={initial_sparsity} must be in [0, target_sparsity="
                             f"{self.target_sparsity}]")
        if int(prune_every) < 1:
            raise ConfigError(f"method.prune_every={prune_every} must be >= 1 (steps)")
        if not 0.0 <= float(prune_start_fraction) <= float(prune_end_fraction) <= 1.0:
            raise ConfigError(f"need 0 <= method.prune_start_fraction ({prune_start_fraction}) <= "
                             f"method.prune_end_fraction ({prune_end_fraction}) <= 1")
        self.initial_sparsity = float(initial_sparsity)
        self.prune_every = int(prune_every)
        self.start_fraction = float(prune_start_fraction)
        self.end_fraction = float(prune_end_fraction)
        self.prunes = 0                 # schedule pruning steps done
        self.scheduled_sparsity = self.initial_sparsity

    # -- schedule -------------------------------------------------------------------------------------
    def bounds(self) -> tuple[int, int]:
        """(t0, t_end) in 0-based fit steps; t_end ≤ T − 1 so the last pruning step exists."""
        T = int(self.total_steps or 0)
        last = max(T - 1, 0)
        t0 = min(int(round(self.start_fraction * T)), last)
        t_end = min(max(int(round(self.end_fraction * T)), t0), last)
        return t0, t_end

    def sparsity_at(self, step: int) -> float:
        t0, t_end = self.bounds()
        return gmp_sparsity(step, self.target_sparsity, self.initial_sparsity, t0, t_end - t0)

    def is_prune_step(self, step: int) -> bool:
        t0, t_end = self.bounds()
        return t0 <= step <= t_end and ((step - t0) % self.prune_every == 0 or step == t_end)

    def is_update_step(self, step: int) -> bool:
        return self.is_prune_step(step)

    # -- masks ----------------------------------------------------------------------------------------
    def initial_masks(self, ctx: "StageContext") -> dict[str, torch.Tensor] | None:
        if self.initial_sparsity <= 0:
            return None  # dense start
        return global_magnitude_masks(dict(original_weights(ctx.model)), 1.0 - self.initial_sparsity)

    def prune_to_schedule(self, trainer: "Trainer", step: int) -> dict[str, torch.Tensor]:
        """Global magnitude prune to s(step); zeroes pruned weights and their optimizer moments."""
        weights, masks = self.weights_and_masks(trainer.model)
        self.scheduled_sparsity = self.sparsity_at(step)
        new = global_magnitude_prune(weights, masks, 1.0 - self.scheduled_sparsity)
        set_masks(trainer.model, new)
        apply_masks_(trainer.model, trainer.optimizer)
        self.prunes += 1
        return new

    def update_masks(self, trainer: "Trainer", step: int) -> None:
        self.prune_to_schedule(trainer, step)

    def epoch_metrics(self, trainer: "Trainer") -> dict:
        return {"scheduled_sparsity": self.scheduled_sparsity, "prune_steps": self.prunes}

    def extra_state(self) -> dict:
        return {"prunes": self.prunes, "scheduled_sparsity": self.scheduled_sparsity}

    def load_extra_state(self, state: dict) -> None:
        self.prunes = int(state.get("prunes", 0))
        self.scheduled_sparsity = float(state.get("scheduled_sparsity", self.initial_sparsity))
