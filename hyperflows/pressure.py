"""The global pressure towards removal (eq. 8) and its gradient.

L_pressure = λ · (1/N) Σ_i t_i [· 1(t_i > −ε)], λ = γ^p. Its gradient is the same constant λ/N for
every (pressured) t_i (eq. 10), so the training loop adds it to ``t.grad`` directly
(``add_pressure_grad_``) instead of building an autograd graph over all N flow parameters;
``pressure_loss`` is the reference the tests differentiate and what is logged.

Cost-weighted (structured Hyperflows, ours): 1/N becomes each flow's ``share`` of the removable cost,
share_i = c_i / Σ_j c_j (c_i: the MACs or parameters removing unit i saves), so the pressure acts in the unit the
target is measured in; uniform costs give back eq. 8.
"""
from __future__ import annotations

from typing import Sequence

import torch


def pressure_coefficient(gamma: float, exponent: float = 1.5) -> float:
    """λ = γ^p (p = 1.5); γ is floored at 0 by the scheduler."""
    return max(float(gamma), 0.0) ** float(exponent)


def pressure_loss(ts: Sequence[torch.Tensor], lam: float, threshold: float | None = None,
                  shares: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
    """λ · mean over all N flow parameters of t (only t > −ε counts when ``threshold`` = ε is set); with
    ``shares`` (one tensor per t, summing to 1 overall) λ · Σ share_i t_i instead of the mean."""
    gated = [t.float() * (t > -threshold) if threshold is not None else t.float() for t in ts]
    if shares is not None:
        return lam * sum((g * s).sum() for g, s in zip(gated, shares))
    n = sum(t.numel() for t in ts)
    return sum(g.sum() for g in gated) * (lam / max(n, 1))


@torch.no_grad()
def add_pressure_grad_(ts: Sequence[torch.Tensor], lam: float, threshold: float | None = None,
                       shares: Sequence[torch.Tensor] | None = None) -> None:
    """t.grad += ∂L_pressure/∂t = λ/N (λ·share_i with ``shares``; times 1(t > −ε) with a threshold), in place."""
    if lam == 0:
        return
    n = sum(t.numel() for t in ts)
    step = lam / max(n, 1)
    for t in ts:
        if t.grad is None:
            t.grad = torch.zeros_like(t)
    if shares is not None:
        for t, s in zip(ts, shares):
            t.grad.add_(s * lam if threshold is None else s * lam * (t > -threshold))
    elif threshold is None:
        torch._foreach_add_([t.grad for t in ts], step)
    else:
        for t in ts:
            t.grad.add_((t > -threshold).to(t.grad.dtype), alpha=step)
