"""What a Hyperflows run puts flows on: every weight (the paper) or every structural unit (ours).

A granularity attaches its flow parameters to the model, hands the callback a :class:`Flows` (the tensors, and
what each flow costs), and turns the trained flows into the final model: baked masks for weights, physically
removed channels for units (:mod:`hyperflows.structured`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch
from torch import nn

from experiments.errors import ConfigError
from experiments.sparsity.flow_mask import attach_flow_masks, flow_parameters
from experiments.sparsity.masks import density as mask_density
from experiments.sparsity.masks import finalize

from .scheduler import cost_threshold, snap_threshold

if TYPE_CHECKING:  # pragma: no cover
    from experiments.context import StageContext


@dataclass
class Flows:
    """Flow tensors (one per layer or unit) and their costs: ``costs`` None = every flow costs 1 (per-weight
    Hyperflows, density = kept / N); else density = (fixed + Σ c·[t ≥ 0]) / (fixed + Σ c), the kept fraction of
    the MACs or parameters, ``fixed`` being the cost no flow can remove."""

    names: list[str]
    ts: list[torch.Tensor]
    costs: list[torch.Tensor] | None = None
    fixed: float = 0.0

    def __post_init__(self):
        self.n = sum(t.numel() for t in self.ts)
        self.shares = None
        if self.costs is not None:
            total = float(sum(c.sum() for c in self.costs))
            self.shares = [c / total for c in self.costs]
            self.total = total + self.fixed

    def masks(self) -> list[torch.Tensor]:
        return [t.detach() >= 0 for t in self.ts]

    def density(self, masks: list[torch.Tensor] | None = None) -> float:
        masks = self.masks() if masks is None else masks
        if self.costs is None:
            return mask_density(masks)
        return (self.fixed + float(sum((c * m).sum() for c, m in zip(self.costs, masks)))) / self.total

    def snap_target(self, density: float) -> tuple[float, float]:
        """(τ, the density the snap aims at) for a final ``density``: the top (1 − S)·N flows, or, with costs, the
        largest flows whose cost first reaches that fraction of the total."""
        if self.costs is None:
            keep = round(density * self.n)
            return snap_threshold(self.ts, keep), keep / self.n
        return cost_threshold(self.ts, self.costs, density * self.total - self.fixed), density


class Granularity(Protocol):
    per_weight: bool

    def attach(self, ctx: "StageContext") -> None: ...
    def flows(self, model: nn.Module) -> Flows: ...
    def finalize(self, model: nn.Module) -> nn.Module: ...


class WeightFlows:
    """One flow t per Conv2d/Linear weight, m = [t ≥ 0] on the weight (eqs. 4–6); the final model has zeros."""

    per_weight = True

    def __init__(self, t_init: float = 0.2, ste_slope: float = 0.25, seed: int = 0):
        self.t_init, self.ste_slope, self.seed = t_init, ste_slope, seed

    def attach(self, ctx: "StageContext") -> None:
        attach_flow_masks(ctx.model, init=self.t_init, slope=self.ste_slope, seed=self.seed)

    def flows(self, model: nn.Module) -> Flows:
        params = flow_parameters(model)
        return Flows(list(params), list(params.values()))

    def finalize(self, model: nn.Module) -> nn.Module:
        return finalize(model)


def create_granularity(name: str, t_init: float, ste_slope: float, seed: int, units=None) -> Granularity:
    """``weights`` (the paper)."""
    if name == "weights":
        return WeightFlows(t_init, ste_slope, seed)
    raise ConfigError(f"method.granularity={name!r}; use weights")
