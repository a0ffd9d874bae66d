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

import math
from typing import Callable

import torch
from torch.optim.adam import adam

#: ``method.flow_step`` values
FLOW_STEPS = ("in_backward", "optimizer", "kernel")
#: ``method.flow_dtype`` values
FLOW_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def stochastic_round_bf16(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """fp32 ``x`` to bfloat16, rounded up or down (in magnitude) with probability proportional to the distance, so
    E[result] = x: a random 16-bit integer is added to the bit pattern and the low 16 bits are cut. Round-to-nearest
    would drop every Adam update smaller than half a bf16 step (most of them at Hyperflows' t-LR)."""
    noise = torch.randint(0, 1 << 16, x.shape, dtype=torch.int32, device=x.device, generator=generator)
    return noise.add_(x.contiguous().view(torch.int32)).bitwise_and_(-65536).view(torch.float32).to(torch.bfloat16)


class InBackwardFlowStep:
    """A :data:`experiments.sparsity.flow_mask.FlowSink`: t ← Adam(t, c·w ⊙ ∂L/∂ŵ + pressure(t)), in place.

    ``pressure(t)`` is the pressure gradient of that flow tensor (a float, or a tensor for a threshold or cost
    shares), read at each call, so the scheduler's λ changes take effect on the next step. Flows stored in bfloat16
    (``method.flow_dtype``, with their Adam moments) are updated in fp32 and stochastically rounded back."""

    def __init__(self, optimizer: torch.optim.Adam, pressure: Callable[[torch.Tensor], float | torch.Tensor],
                 seed: int = 0):
        self.optimizer, self.pressure = optimizer, pressure
        #: the stochastic rounding's own stream (the data order and everything else keep theirs)
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def group(self) -> dict:
        """The optimizer's one param group, read at each step: ``load_state_dict`` (resume) replaces the group dicts,
        and the trainer sets the flow LR of the epoch on the current one."""
        return self.optimizer.param_groups[0]

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
    def __call__(self, t: torch.Tensor, g: torch.Tensor, w: torch.Tensor, m: torch.Tensor, slope: float) -> None:
        grad = self.flow_grad(g, w, slope, self.pressure(t))
        st = self.state(t)
        if t.dtype == torch.float32:
            self.adam_(t, grad, st["exp_avg"], st["exp_avg_sq"], st["step"])
            return
        full = [t.float(), st["exp_avg"].float(), st["exp_avg_sq"].float()]
        self.adam_(full[0], grad.float(), full[1], full[2], st["step"])
        gen = self.generator if t.device.type == "cpu" else None
        for low, high in zip((t, st["exp_avg"], st["exp_avg_sq"]), full):
            low.copy_(stochastic_round_bf16(high, gen))

    @staticmethod
    def flow_grad(g: torch.Tensor, w: torch.Tensor, slope: float, p: float | torch.Tensor) -> torch.Tensor:
        """c·(w ⊙ ∂L/∂ŵ) + p rounded exactly as the reference rounds it: w ⊙ g once, then ×c, then +p. With a
        power-of-two c (the default 0.25) ×c is exact, so one fused multiply-add does ×c and +p bit-equally and the
        whole gradient takes two passes instead of three."""
        gw = torch.mul(g, w)
        if math.frexp(slope)[0] != 0.5:                    # a general slope: ×c rounds, keep the three passes
            gw.mul_(slope)
            return gw.add_(p) if torch.is_tensor(p) or p != 0 else gw
        if not torch.is_tensor(p):
            if p == 0:
                return gw.mul_(slope)
            p = torch.tensor(p, dtype=gw.dtype, device=gw.device)   # f32(p), as the reference's scalar add rounds it
        return torch.add(p, gw, alpha=slope)

    def adam_(self, t, grad, exp_avg, exp_avg_sq, step) -> None:
        """One Adam step on fp32 tensors in place, as ``torch.optim.Adam`` with this group's settings does it."""
        grp = self.group
        beta1, beta2 = grp["betas"]
        if grp["fused"]:   # the kernel torch.optim.Adam(fused=True) calls, without its per-step Python grouping
            step.add_(1)
            torch._fused_adam_([t], [grad], [exp_avg], [exp_avg_sq], [], [step], lr=grp["lr"], beta1=beta1,
                               beta2=beta2, weight_decay=grp["weight_decay"], eps=grp["eps"], amsgrad=False,
                               maximize=False)
            return
        adam([t], [grad], [exp_avg], [exp_avg_sq], [], [step], foreach=grp["foreach"], capturable=grp["capturable"],
             fused=False, amsgrad=False, beta1=beta1, beta2=beta2, lr=grp["lr"], weight_decay=grp["weight_decay"],
             eps=grp["eps"], maximize=False)
