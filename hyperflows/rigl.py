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

from experiments.errors import ConfigError
from experiments.sparsity.drop_grow import dense_gradients, drop_and_grow_layers
from experiments.sparsity.masks import original_weights
from experiments.sparsity.schedules import apportion, erk_densities, rigl_drop_fraction

from .scheduled_method import ScheduledMaskedMethod

if TYPE_CHECKING:  # pragma: no cover
    from experiments.context import StageContext
    from experiments.train import Trainer

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


class RigL(ScheduledMaskedMethod):
    """``method=rigl``."""

    uses_dense_grad = True

    def __init__(self, name: str, target_sparsity: float, init: str = "magnitude", distribution: str = "erk",
                 erk_power_scale: float = 1.0, alpha: float = 0.3, update_every: int = 100,
                 end_fraction: float = 0.75, **base):
        super().__init__(name=name, target_sparsity=target_sparsity, **base)
        if init not in INITS:
            raise ConfigError(f"method.init={init!r} is not one of {INITS}")
        if distribution not in DISTRIBUTIONS:
            raise ConfigError(f"method.distribution={distribution!r} is not one of {DISTRIBUTIONS}")
        if int(update_every) < 1:
            raise ConfigError(f"method.update_every={update_every} must be >= 1 (steps)")
        if not 0.0 <= float(alpha) <= 1.0 or not 0.0 <= float(end_fraction) <= 1.0:
            raise ConfigError(f"method.alpha={alpha} and method.end_fraction={end_fraction} must be in [0, 1]")
        self.init = init
        self.distribution = distribution
        self.erk_power_scale = float(erk_power_scale)
        self.alpha = float(alpha)
        self.update_every = int(update_every)
        self.end_fraction = float(end_fraction)
        self.last_fraction = 0.0
        self.last_dropped = 0      # weights dropped at the last update
        self.last_grown_new = 0    # weights grown at the last update that were inactive before it
        self.grown_total = 0

    # -- schedule -------------------------------------------------------------------------------------
    def end_step(self) -> int:
        return int(round(self.end_fraction * int(self.total_steps or 0)))

    def is_update_step(self, step: int) -> bool:
        return 0 < step < self.end_step() and step % self.update_every == 0

    # -- masks ----------------------------------------------------------------------------------------
    def initial_masks(self, ctx: "StageContext") -> dict[str, torch.Tensor]:
        weights = original_weights(ctx.model)
        counts = layer_counts({n: tuple(w.shape) for n, w in weights.items()}, 1.0 - self.target_sparsity,
                              self.distribution, self.erk_power_scale)
        if self.init == "magnitude":
            return {n: top_count_mask(w.detach().abs(), counts[n]) for n, w in weights.items()}
        return {n: top_count_mask(torch.rand(w.shape, device=w.device), counts[n]) for n, w in weights.items()}

    def update_masks(self, trainer: "Trainer", step: int) -> None:
        grads = dense_gradients(self.masks)
        weights, masks = self.weights_and_masks(trainer.model)
        frac = rigl_drop_fraction(step, self.alpha, self.end_step())
        counts = {name: int(frac * int(mask.sum())) for name, mask in masks.items()}
        dropped, grown_new = drop_and_grow_layers(trainer.model, trainer.optimizer, weights, masks, grads, counts)
        self.last_fraction, self.last_dropped, self.last_grown_new = frac, dropped, grown_new
        self.grown_total += grown_new

    def epoch_metrics(self, trainer: "Trainer") -> dict:
        return {"drop_fraction": self.last_fraction, "dropped": self.last_dropped,
                "grown_new": self.last_grown_new, "grown_total": self.grown_total, "mask_updates": self.updates}

    def extra_state(self) -> dict:
        return {"last_fraction": self.last_fraction, "last_dropped": self.last_dropped,
                "last_grown_new": self.last_grown_new, "grown_total": self.grown_total}

    def load_extra_state(self, state: dict) -> None:
        self.last_fraction = float(state.get("last_fraction", 0.0))
        self.last_dropped = int(state.get("last_dropped", 0))
        self.last_grown_new = int(state.get("last_grown_new", 0))
        self.grown_total = int(state.get("grown_total", 0))
