"""RigL (Evci et al., ICML 2020): constant-sparsity dynamic sparse training with gradient regrowth.

Layer densities follow Erdős–Rényi-Kernel at the target (``schedules.erk_densities``, exact integer
counts by ``schedules.apportion``) or are uniform. Initial masks keep each layer's largest |w| of the
dense model (``init: magnitude``: every method of our comparison starts from the same pretrained
checkpoint) or a uniformly random subset (``init: random`` with ``from_scratch: true``: the original
sparse-from-scratch RigL). Every ``update_every`` steps t < T_end = ``end_fraction``·T, each layer drops
⌊f(t)·n_active⌋ of its smallest-|w| active weights, f(t) = (α/2)(1 + cos(π t/T_end)), and grows as many
inactive weights (inactive after the drop) with the largest dense |∂L/∂ŵ| of that step, averaged over
DDP ranks so every rank picks the same mask. Grown weights start at zero with zero momentum.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from experiments.errors import ConfigError
from experiments.sparsity.drop_grow import dense_gradients, drop_and_grow_layers
from experiments.sparsity.mask_schedules import PeriodicSchedule
from experiments.sparsity.masks import current_masks, original_weights
from experiments.sparsity.schedules import apportion, erk_densities, rigl_drop_fraction

from .masked_method import MaskedMethod

if TYPE_CHECKING:  # pragma: no cover
    from experiments.context import StageContext

INITS = ("magnitude", "random")
DISTRIBUTIONS = ("erk", "uniform")


def layer_counts(shapes: dict[str, tuple[int, ...]], density: float, distribution: str = "erk",
                 erk_power_scale: float = 1.0) -> dict[str, int]:
    """Kept weights per layer, summing to round(density·N)."""
    sizes = {n: int(math.prod(s)) for n, s in shapes.items()}
    if distribution == "erk":
        dens = erk_densities(shapes, density, erk_power_scale)
    elif distribution == "uniform":
        dens = {n: density for n in shapes}
    else:
        raise ConfigError(f"method.distribution={distribution!r} is not one of {DISTRIBUTIONS}")
    return apportion(dens, sizes, int(round(density * sum(sizes.values()))))


def top_count_mask(score: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of the ``k`` largest entries of ``score``."""
    flat = torch.zeros(score.numel(), dtype=torch.bool, device=score.device)
    if k > 0:
        flat[torch.topk(score.flatten().float(), k).indices] = True
    return flat.view_as(score)


class DropGrow:
    """Mask rule: at each step of ``schedule`` every layer drops ⌊f(t)·n_active⌋ smallest |w| and grows as many
    largest dense |∂L/∂ŵ| among the inactive, f(t) = ``rigl_drop_fraction`` (α, T_end)."""

    uses_dense_grad = True

    def __init__(self, schedule: PeriodicSchedule, alpha: float = 0.3):
        if not 0.0 <= float(alpha) <= 1.0:
            raise ConfigError(f"method.alpha={alpha} must be in [0, 1]")
        self.schedule, self.alpha = schedule, float(alpha)
        self.updates = 0
        self.last_fraction = 0.0
        self.last_dropped = 0      # weights dropped at the last update
        self.last_grown_new = 0    # weights grown at the last update that were inactive before it
        self.grown_total = 0

    def is_step(self, step: int) -> bool:
        return self.schedule.is_step(step)

    def apply(self, model: nn.Module, optimizer: torch.optim.Optimizer, masks: dict[str, nn.Module],
              step: int) -> None:
        grads = dense_gradients(masks)
        weights, current = original_weights(model), current_masks(model)
        frac = rigl_drop_fraction(step, self.alpha, self.schedule.end_step())
        counts = {name: int(frac * int(mask.sum())) for name, mask in current.items()}
        dropped, grown_new = drop_and_grow_layers(model, optimizer, weights, current, grads, counts)
        self.last_fraction, self.last_dropped, self.last_grown_new = frac, dropped, grown_new
        self.grown_total += grown_new
        self.updates += 1

    def metrics(self) -> dict:
        return {"drop_fraction": self.last_fraction, "dropped": self.last_dropped,
                "grown_new": self.last_grown_new, "grown_total": self.grown_total, "mask_updates": self.updates}

    def state_dict(self) -> dict:
        return {"updates": self.updates, "last_fraction": self.last_fraction, "last_dropped": self.last_dropped,
                "last_grown_new": self.last_grown_new, "grown_total": self.grown_total}

    def load_state_dict(self, state: dict) -> None:
        self.updates, self.last_fraction = int(state["updates"]), float(state["last_fraction"])
        self.last_dropped, self.last_grown_new = int(state["last_dropped"]), int(state["last_grown_new"])
        self.grown_total = int(state["grown_total"])


class RigL(MaskedMethod):
    """``method=rigl``: ERK (or uniform) initial masks, then a :class:`DropGrow` rule on a periodic schedule."""

    def __init__(self, name: str, target_sparsity: float, init: str = "magnitude", distribution: str = "erk",
                 erk_power_scale: float = 1.0, alpha: float = 0.3, update_every: int = 100,
                 end_fraction: float = 0.75, **recipe):
        super().__init__(name=name, target_sparsity=target_sparsity, **recipe)
        if init not in INITS:
            raise ConfigError(f"method.init={init!r} is not one of {INITS}")
        if distribution not in DISTRIBUTIONS:
            raise ConfigError(f"method.distribution={distribution!r} is not one of {DISTRIBUTIONS}")
        self.init = init
        self.distribution = distribution
        self.erk_power_scale = float(erk_power_scale)
        self.schedule = PeriodicSchedule(self.clock, update_every, end_fraction)
        self.drop_grow = DropGrow(self.schedule, alpha)
        self.rules = [self.drop_grow]

    def initial_masks(self, ctx: "StageContext") -> dict[str, torch.Tensor]:
        weights = original_weights(ctx.model)
        counts = layer_counts({n: tuple(w.shape) for n, w in weights.items()}, 1.0 - self.target_sparsity,
                              self.distribution, self.erk_power_scale)
        if self.init == "magnitude":
            return {n: top_count_mask(w.detach().abs(), counts[n]) for n, w in weights.items()}
        return {n: top_count_mask(torch.rand(w.shape, device=w.device), counts[n]) for n, w in weights.items()}
