"""What a network costs (MACs or parameters) as a function of the widths of its prunable units.

Every conv/linear layer costs in · out · const (+ out · const for its bias and norm), so with r_u channels removed
from unit u the model costs exactly

    cost(r) = total − Σ_u α_u r_u + Σ_(u,v) β_uv r_u r_v

where α_u is what removing one channel of u saves at full width and β_uv > 0 couples a unit to the unit that
consumes its channels (LeNet's conv1 → conv2: conv2 costs in · out). The coefficients are measured once, by
removing channels from copies of the model and counting; the marginal cost of one more channel of u at the
current widths is α_u − Σ_v β_uv r_v.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from .removal import cost as model_cost
from .removal import remove_channels
from .units import Unit


@dataclass(frozen=True)
class WidthCost:
    """``total`` at full width; ``channels`` n_u, ``alpha`` α_u per unit; ``beta`` (u, v, β_uv) per coupled pair."""

    total: float
    channels: tuple[int, ...]
    alpha: tuple[float, ...]
    beta: tuple[tuple[int, int, float], ...] = ()

    @classmethod
    def uniform(cls, channels: Sequence[int]) -> "WidthCost":
        """Every channel costs 1 (the kept fraction of channels)."""
        return cls(float(sum(channels)), tuple(channels), tuple(1.0 for _ in channels))

    def cost(self, kept: Sequence[int]) -> float:
        r = [n - k for n, k in zip(self.channels, kept)]
        return self.total - sum(a * x for a, x in zip(self.alpha, r)) + sum(b * r[u] * r[v] for u, v, b in self.beta)

    def marginal(self, kept: Sequence[int]) -> list[float]:
        """What one more channel of each unit costs at the widths ``kept`` (= what removing one saves)."""
        r = [n - k for n, k in zip(self.channels, kept)]
        out = list(self.alpha)
        for u, v, b in self.beta:
            out[u] -= b * r[v]
            out[v] -= b * r[u]
        return out


def _without(model: nn.Module, example: torch.Tensor, find: Callable, drop: dict[str, int]) -> nn.Module:
    """A copy of ``model`` with the last ``drop[name]`` channels of those units removed."""
    m = copy.deepcopy(model)
    units = {u.name: u for u in find(m)}
    chosen = [units[n] for n in drop]
    return remove_channels(m, example, chosen, {n: torch.arange(units[n].num_channels - k) for n, k in drop.items()})


def measure_width_cost(model: nn.Module, example: torch.Tensor, units: list[Unit], kind: str,
                       find: Callable[[nn.Module], list[Unit]]) -> WidthCost:
    """α by removing one channel of each unit, β by removing one of each coupled pair (a layer reads u's channels and
    writes v's: u's consumer is one of v's producers; residual groups have several of each), counted in ``kind``
    (``macs`` or ``params``); ``find(model)`` finds the units of a copy by name."""
    total = model_cost(model, example, kind)
    names = [u.name for u in units]
    alpha = [total - model_cost(_without(model, example, find, {n: 1}), example, kind) for n in names]
    beta = []
    for i, u in enumerate(units):
        for j, v in enumerate(units):
            readers = {id(c) for c in (u.consumers or [u.consumer]) if c is not None}
            if i != j and readers & {id(p) for p in (v.producers or [v.layer])}:
                both = model_cost(_without(model, example, find, {u.name: 1, v.name: 1}), example, kind)
                beta.append((i, j, both - total + alpha[i] + alpha[j]))
    return WidthCost(total, tuple(u.num_channels for u in units), tuple(alpha), tuple(beta))
