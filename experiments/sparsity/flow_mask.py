"""Hyperflows' flow parametrization: one learnable t per weight, m = [t ≥ 0], straight-through gradient.

Forward ŵ = w ⊙ H(t) (eqs. 4–5, a tie counts as kept). Backward, with a constant STE slope c
(0.25 = σ'(0), eq. 6):

    ∂L/∂w = m ⊙ ∂L/∂ŵ          ∂L/∂t = c · w ⊙ ∂L/∂ŵ

so a pruned weight (m = 0) still receives ∂L/∂t: its *flow* (eq. 7), the first-order estimate of
what bringing it back would do to the loss. Both gradients come out of one fused autograd function
(one saved mask, no separate Heaviside node), which keeps the per-step overhead small.

A mask may carry a ``sink``: then backward hands (t, ∂L/∂ŵ, w, m, c) to it instead of returning ∂L/∂t, and the
sink updates t in place (:class:`hyperflows.flow_step.InBackwardFlowStep`: pressure folded in, Adam applied), so t
never gets a ``.grad``: one pass and one tensor of N fewer per step. A sink may also return ∂L/∂w (computed in the
same pass) and offer ``weight(w, t, slope) -> ŵ or None``: ŵ from its own autograd function, whose backward does
the whole step (:mod:`hyperflows.flow_kernel`, in C++).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .masks import attach_masks, mask_modules


#: what a mask's sink is called with in backward: (t, ∂L/∂ŵ, w, m, slope); it updates t in place and returns ∂L/∂w
#: or None (then backward computes m ⊙ ∂L/∂ŵ)
FlowSink = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, float], "torch.Tensor | None"]


def heaviside(t: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """1[t ≥ 0] as floats (t = ±0 → 1), written by the comparison straight into a float tensor: one pass; on CPU
    ``(t >= 0).to(dtype)`` is several times slower (its bool result and cast are not vectorised)."""
    return torch.ge(t, 0, out=torch.empty(t.shape, dtype=dtype or t.dtype, device=t.device))


class _FlowMaskedWeight(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w, t, slope, sink):
        m = heaviside(t, w.dtype)
        out = w * m
        ctx.save_for_backward(w, m)
        ctx.slope, ctx.sink, ctx.t = slope, sink, (t if sink is not None else None)
        return out

    @staticmethod
    def backward(ctx, g):
        w, m = ctx.saved_tensors
        if ctx.sink is not None:              # t is updated here, in place; it gets no .grad
            gw = ctx.sink(ctx.t, g, w, m, ctx.slope)
            if gw is None and ctx.needs_input_grad[0]:
                gw = g * m
            return gw, None, None, None
        gw = g * m if ctx.needs_input_grad[0] else None
        gt = (g * w).mul_(ctx.slope) if ctx.needs_input_grad[1] else None
        return gw, gt, None, None


def flow_masked_weight(w: torch.Tensor, t: torch.Tensor, slope: float = 0.25,
                       sink: FlowSink | None = None) -> torch.Tensor:
    """ŵ = w ⊙ [t ≥ 0] with the constant-slope straight-through gradient for t (eq. 6); with ``sink``, backward
    passes (t, ∂L/∂ŵ, w, m, slope) to it instead of returning ∂L/∂t (:data:`FlowSink`), unless the sink's own
    ``weight(w, t, slope)`` builds ŵ (a compiled function whose backward does the same)."""
    own = getattr(sink, "weight", None)
    out = own(w, t, slope) if own is not None else None
    return out if out is not None else _FlowMaskedWeight.apply(w, t, slope, sink)


class FlowMask(nn.Module):
    """Parametrization holding the flow parameter ``t`` (same shape as the weight; fp32, or ``dtype``)."""

    def __init__(self, weight: torch.Tensor, init: float = 0.2, slope: float = 0.25,
                 generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32):
        super().__init__()
        t = torch.empty(weight.shape, dtype=torch.float32)
        t.uniform_(init, 2.5 * init, generator=generator)   # U[t0, 2.5 t0]: every weight starts active
        self.t = nn.Parameter(t.to(device=weight.device, dtype=dtype))
        self.slope = float(slope)
        #: set while a method updates t inside backward (:data:`FlowSink`); None: t gets its gradient
        self.sink: FlowSink | None = None

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return flow_masked_weight(w, self.t, self.slope, self.sink)

    def current_mask(self) -> torch.Tensor:
        return self.t.detach() >= 0

    def extra_repr(self) -> str:
        return f"shape={tuple(self.t.shape)}, slope={self.slope}"


def attach_flow_masks(model: nn.Module, init: float = 0.2, slope: float = 0.25, seed: int | None = None,
                      dtype: torch.dtype = torch.float32) -> dict[str, FlowMask]:
    """Give every Conv2d/Linear weight of ``model`` a ``FlowMask``; returns name -> FlowMask."""
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    return attach_masks(model, lambda name, layer: FlowMask(layer.weight, init, slope, gen, dtype))


def flow_masks(model: nn.Module) -> dict[str, FlowMask]:
    """name -> FlowMask of every flow-masked layer."""
    return {name: m for name, m in mask_modules(model).items() if isinstance(m, FlowMask)}


def flow_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """name -> t of every flow-masked layer."""
    return {name: m.t for name, m in flow_masks(model).items()}
