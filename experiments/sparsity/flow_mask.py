"""Hyperflows' flow parametrization: one learnable t per weight, m = [t ≥ 0], straight-through gradient.

Forward ŵ = w ⊙ H(t) (eqs. 4–5, a tie counts as kept). Backward, with a constant STE slope c
(0.25 = σ'(0), eq. 6):

    ∂L/∂w = m ⊙ ∂L/∂ŵ          ∂L/∂t = c · w ⊙ ∂L/∂ŵ

so a pruned weight (m = 0) still receives ∂L/∂t: its *flow* (eq. 7), the first-order estimate of
what bringing it back would do to the loss. Both gradients come out of one fused autograd function
(one saved mask, no separate Heaviside node), which keeps the per-step overhead small.
"""
from __future__ import annotations

import torch
from torch import nn

from .masks import attach_masks, mask_modules


def heaviside(t: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """1[t ≥ 0] as floats: clamp(sign(t) + 1, max=1) (t = ±0 → 1). Two float passes; on CPU this is several
    times faster than ``(t >= 0).to(dtype)``, whose bool comparison and cast are not vectorised."""
    return torch.sign(t).add_(1).clamp_(max=1).to(dtype or t.dtype)


class _FlowMaskedWeight(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w, t, slope):
        m = heaviside(t, w.dtype)
        ctx.save_for_backward(w, m)
        ctx.slope = slope
        return w * m

    @staticmethod
    def backward(ctx, g):
        w, m = ctx.saved_tensors
        gw = g * m if ctx.needs_input_grad[0] else None
        gt = (g * w).mul_(ctx.slope) if ctx.needs_input_grad[1] else None
        return gw, gt, None


def flow_masked_weight(w: torch.Tensor, t: torch.Tensor, slope: float = 0.25) -> torch.Tensor:
    """ŵ = w ⊙ [t ≥ 0] with the constant-slope straight-through gradient for t (eq. 6)."""
    return _FlowMaskedWeight.apply(w, t, slope)


class FlowMask(nn.Module):
    """Parametrization holding the flow parameter ``t`` (fp32, same shape as the weight)."""

    def __init__(self, weight: torch.Tensor, init: float = 0.2, slope: float = 0.25,
                 generator: torch.Generator | None = None):
        super().__init__()
        t = torch.empty(weight.shape, dtype=torch.float32)
        t.uniform_(init, 2.5 * init, generator=generator)   # U[t0, 2.5 t0]: every weight starts active
        self.t = nn.Parameter(t.to(weight.device))
        self.slope = float(slope)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return flow_masked_weight(w, self.t, self.slope)

    def current_mask(self) -> torch.Tensor:
        return self.t.detach() >= 0

    def extra_repr(self) -> str:
        return f"shape={tuple(self.t.shape)}, slope={self.slope}"


def attach_flow_masks(model: nn.Module, init: float = 0.2, slope: float = 0.25,
                      seed: int | None = None) -> dict[str, FlowMask]:
    """Give every Conv2d/Linear weight of ``model`` a ``FlowMask``; returns name -> FlowMask."""
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    return attach_masks(model, lambda name, layer: FlowMask(layer.weight, init, slope, gen))


def flow_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """name -> t of every flow-masked layer."""
    return {name: m.t for name, m in mask_modules(model).items() if isinstance(m, FlowMask)}
