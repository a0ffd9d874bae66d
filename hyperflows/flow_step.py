"""The flows' Adam step inside backward, with the pressure folded into their gradient (``method.flow_step``).

The reference step (``optimizer``) writes ∂L/∂t = c·w ⊙ ∂L/∂ŵ into ``t.grad`` (eq. 6), adds the pressure gradient
λ/N (eq. 10) in a second pass, and lets ``torch.optim.Adam`` update t after backward. ``in_backward`` does the same
arithmetic per layer as soon as that layer's ∂L/∂ŵ exists, in the reference's order (an ``addcmul`` would be one
pass less but rounds once, not twice), then calls the same fused Adam kernel on t, with the state kept in the same
``torch.optim.Adam`` (its ``state``, LR schedule and checkpoints are unchanged). No ``t.grad`` is ever allocated:
the training state is N floats smaller, and the step saves the pressure pass, the gradient zeroing and Adam's
Python loop. t, masks and Adam's state equal the reference's to the bit (tests/hyperflows/test_flow_step.py).
A model must read each masked weight once per forward (weight tying would update its flows twice per step).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch.optim.adam import adam

#: ``method.flow_step`` values
FLOW_STEPS = ("in_backward", "optimizer")


class InBackwardFlowStep:
    """A :data:`experiments.sparsity.flow_mask.FlowSink`: t ← Adam(t, c·w ⊙ ∂L/∂ŵ + pressure(t)), in place.

    ``pressure(t)`` is the pressure gradient of that flow tensor (a float, or a tensor for a threshold or cost
    shares), read at each call, so the scheduler's λ changes take effect on the next step."""

    def __init__(self, optimizer: torch.optim.Adam, pressure: Callable[[torch.Tensor], float | torch.Tensor]):
        self.optimizer, self.pressure = optimizer, pressure
        self.group = optimizer.param_groups[0]

    def state(self, t: torch.Tensor) -> dict:
        """Adam's state of ``t``, created as ``torch.optim.Adam`` creates it (so state_dict/resume are unchanged)."""
        st = self.optimizer.state[t]
        if not st:
            on_device = self.group["fused"] or self.group["capturable"]
            st["step"] = torch.zeros((), dtype=torch.float32, device=t.device if on_device else "cpu")
            st["exp_avg"] = torch.zeros_like(t, memory_format=torch.preserve_format)
            st["exp_avg_sq"] = torch.zeros_like(t, memory_format=torch.preserve_format)
        return st

    @torch.no_grad()
    def __call__(self, t: torch.Tensor, g: torch.Tensor, w: torch.Tensor, slope: float) -> None:
        grad = torch.mul(g, w).mul_(slope)   # ∂L/∂t (eq. 6), rounded as the reference rounds it (not one FMA)
        p = self.pressure(t)
        if torch.is_tensor(p) or p != 0:
            grad.add_(p)
        st, grp = self.state(t), self.group
        beta1, beta2 = grp["betas"]
        if grp["fused"]:   # the kernel torch.optim.Adam(fused=True) calls, without its per-step Python grouping
            st["step"].add_(1)
            torch._fused_adam_([t], [grad], [st["exp_avg"]], [st["exp_avg_sq"]], [], [st["step"]], lr=grp["lr"],
                               beta1=beta1, beta2=beta2, weight_decay=grp["weight_decay"], eps=grp["eps"],
                               amsgrad=False, maximize=False)
            return
        adam([t], [grad], [st["exp_avg"]], [st["exp_avg_sq"]], [], [st["step"]], foreach=grp["foreach"],
             capturable=grp["capturable"], fused=False, amsgrad=False, beta1=beta1, beta2=beta2,
             lr=grp["lr"], weight_decay=grp["weight_decay"], eps=grp["eps"], maximize=False)
