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
from experiments.sparsity.width_cost import WidthCost

from .scheduler import cost_threshold, snap_threshold

if TYPE_CHECKING:  # pragma: no cover
    from experiments.context import StageContext


@dataclass
class Flows:
    """Flow tensors (one per layer, or one per unit) and, for units, what their widths cost.

    ``cost`` None: every flow weighs the same (per-weight Hyperflows, density = kept / N, eq. 8's 1/N). Else one
    tensor per unit and density = cost(kept widths) / cost(full) in MACs or parameters
    (:class:`experiments.sparsity.width_cost.WidthCost`; a unit keeps at least one channel, as removal does), and
    each flow's pressure share is its unit's marginal cost at the current widths over the total
    (:meth:`refresh`), so the pressure pushes where a channel saves the most."""

    names: list[str]
    ts: list[torch.Tensor]
    cost: WidthCost | None = None

    def __post_init__(self):
        self.n = sum(t.numel() for t in self.ts)
        self.shares: list[torch.Tensor] | None = None
        self.refresh()

    def masks(self) -> list[torch.Tensor]:
        return [t.detach() >= 0 for t in self.ts]

    def kept(self, masks: list[torch.Tensor]) -> list[int]:
        return [max(1, int(m.sum())) for m in masks]

    def refresh(self, masks: list[torch.Tensor] | None = None) -> None:
        """Pressure shares from the marginal costs at the widths of ``masks`` (now, if None); they sum to 1."""
        if self.cost is None:
            return
        marginal = self.cost.marginal(self.kept(self.masks() if masks is None else masks))
        norm = sum(max(c, 0.0) * t.numel() for c, t in zip(marginal, self.ts)) or 1.0
        self.shares = [torch.full_like(t, max(c, 0.0) / norm).detach() for c, t in zip(marginal, self.ts)]

    def density(self, masks: list[torch.Tensor] | None = None) -> float:
        masks = self.masks() if masks is None else masks
        if self.cost is None:
            return mask_density(masks)
        return self.cost.cost(self.kept(masks)) / self.cost.total

    def snap_target(self, density: float) -> tuple[float, float]:
        """(τ, the density the snap aims at) for a final ``density``: the top (1 − S)·N flows, or, with costs, the
        largest flows, walked down from the top, until their widths cost ``density`` of the total."""
        if self.cost is None:
            keep = round(density * self.n)
            return snap_threshold(self.ts, keep), keep / self.n
        return cost_threshold(self.ts, self.cost, density * self.cost.total), density


class Granularity(Protocol):
    per_weight: bool

    def attach(self, ctx: "StageContext") -> None: ...
    def flows(self, model: nn.Module) -> Flows: ...
    def finalize(self, model: nn.Module) -> nn.Module: ...
    def summary(self, masks: dict[str, torch.Tensor]) -> dict: ...


class WeightFlows:
    """One flow t per Conv2d/Linear weight, m = [t ≥ 0] on the weight (eqs. 4–6); the final model has zeros."""

    per_weight = True

    def __init__(self, t_init: float = 0.2, ste_slope: float = 0.25, seed: int = 0,
                 dtype: torch.dtype = torch.float32):
        self.t_init, self.ste_slope, self.seed, self.dtype = t_init, ste_slope, seed, dtype

    def attach(self, ctx: "StageContext") -> None:
        attach_flow_masks(ctx.model, init=self.t_init, slope=self.ste_slope, seed=self.seed, dtype=self.dtype)

    def flows(self, model: nn.Module) -> Flows:
        params = flow_parameters(model)
        return Flows(list(params), list(params.values()))

    def finalize(self, model: nn.Module) -> nn.Module:
        return finalize(model)

    def summary(self, masks: dict[str, torch.Tensor]) -> dict:
        """Extra record keys (per-weight: none beyond the method's own)."""
        return {}


def create_granularity(name: str, t_init: float, ste_slope: float, seed: int, units=None,
                       dtype: torch.dtype = torch.float32) -> Granularity:
    """``weights`` (the paper) or ``units`` (conv channels / MLP neurons, physically removed at the end)."""
    if name == "weights":
        return WeightFlows(t_init, ste_slope, seed, dtype)
    if dtype != torch.float32:
        raise ConfigError("method.flow_dtype=bfloat16 is for per-weight flows (method.granularity=weights); "
                          "unit flows are a few hundred numbers: keep float32")
    if name == "units":
        from .structured import UnitFlows
        return UnitFlows(units, t_init, ste_slope, seed)
    raise ConfigError(f"method.granularity={name!r}; use weights or units")
