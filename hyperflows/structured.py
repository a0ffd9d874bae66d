"""Structured Hyperflows (``method=hyperflows_structured``, ours): Hyperflows' flows on structural units.

One flow t_c per channel of each prunable unit (conv output channel, ViT MLP neuron: the units AGF scores),
gate m_c = [t_c ≥ 0] on the unit's output with the straight-through gradient (``experiments.sparsity.channel_gate``:
∂L/∂t_c ∝ Σ Y_c·∂L/∂Y_c, the signed term of AGF's utility). The pressure is weighted by what removing a channel
saves (MACs by default), so Algorithm 1 and the closed loop steer the kept *MAC* fraction to 1 − S; regrowth brings
units back when their flow beats the pressure. At the end gated-off channels are removed physically.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

import torch
from torch import nn

from experiments import options
from experiments.errors import ConfigError
from experiments.sparsity.channel_gate import attach_channel_gates, detach_channel_gates, gates_of
from experiments.sparsity.removal import remove_channels
from experiments.sparsity.units import Unit, find_units
from experiments.sparsity.width_cost import WidthCost, measure_width_cost

from .flows import Flows

if TYPE_CHECKING:  # pragma: no cover
    from experiments.context import StageContext

COSTS = ("macs", "params", "uniform")


@dataclass(frozen=True)
class UnitOptions:
    """Which units get flows (as structured pruning finds them) and what the pressure counts."""

    cost: str = "macs"                 # macs | params | uniform (every channel weighs 1)
    ignore: list = field(default_factory=list)
    prune_heads: bool = False
    include_residual: bool = False     # residual-stream channels too: one flow per channel of each coupled group

    def __post_init__(self):
        if self.cost not in COSTS:
            raise ConfigError(f"method.units.cost={self.cost!r}; use {', '.join(COSTS)}")


class UnitFlows:
    """Flows on units; the final model is physically narrower (at least one channel per unit stays)."""

    per_weight = False

    def __init__(self, units: UnitOptions | Mapping | None, t_init: float = 0.2, ste_slope: float = 0.25,
                 seed: int = 0):
        self.options = options.build(UnitOptions, units, "method.units")
        self.t_init, self.ste_slope, self.seed = t_init, ste_slope, seed
        self.example: torch.Tensor | None = None
        self.cost: WidthCost | None = None
        self.consumer_of: dict[str, str] = {}

    def _units(self, model: nn.Module) -> list[Unit]:
        return find_units(model, self.example, include_residual=self.options.include_residual,
                          ignore=list(self.options.ignore), prune_heads=self.options.prune_heads)

    def attach(self, ctx: "StageContext") -> None:
        self.example = ctx.data.example_input(1).to(next(ctx.model.parameters()).device)
        units = self._units(ctx.model)
        if not units:
            raise ConfigError(f"model={ctx.model_spec['name']}: no prunable units for method.granularity=units")
        if self.options.cost == "uniform":
            self.cost = WidthCost.uniform([u.num_channels for u in units])
        else:
            self.cost = measure_width_cost(ctx.model, self.example, units, self.options.cost, self._units)
        names = {m: n for n, m in ctx.model.named_modules()}
        self.consumer_of = {u.name: names[(u.consumers or [u.consumer])[0]] for u in units}
        attach_channel_gates(ctx.model, units, self.t_init, self.ste_slope, self.seed)
        # the most this granularity can remove (one channel left per unit), in the target's unit
        ctx.metrics["unit_max_reduction"] = 1.0 - self.cost.cost([1] * len(units)) / self.cost.total

    def flows(self, model: nn.Module) -> Flows:
        gates = gates_of(model)
        return Flows(list(self.consumer_of), [gates[c].t for c in self.consumer_of.values()], self.cost)

    def summary(self, masks: dict[str, torch.Tensor]) -> dict:
        """``kept_channels`` per unit (as AGF's record has it; at least one channel stays)."""
        return {"kept_channels": {name: max(1, int(k.sum())) for name, k in masks.items()}}

    def finalize(self, model: nn.Module) -> nn.Module:
        """Remove every gated-off channel (a unit whose flows are all negative keeps its largest); drop the gates."""
        gates = gates_of(model)
        if not gates:
            return model
        keep = {}
        for name, consumer in self.consumer_of.items():
            t = gates[consumer].t.detach()
            kept = torch.nonzero(t >= 0).flatten()
            keep[name] = (kept if kept.numel() else torch.argmax(t).view(1)).cpu()
        detach_channel_gates(model)
        return remove_channels(model, self.example, self._units(model), keep)
