"""Hyperflows' pressure scheduler (Algorithm 1) and flow-LR schedule of the regrowth stage.

The user asks for a final sparsity S; the scheduler aims at the pre-regrowth density
D* = (1 − S)·ρ (regrowth adds weights back, ρ = 11.5/13) along the trajectory

    D̂(e) = Π_{k≤e} r(k),         r(k) = r_s + (r_e − r_s) · σ(A/E_p · (k − E_p/2))      (eqs. 13–14)

with r_s found by bisection so that D̂(E_p) = D*. After each pruning epoch γ moves towards the
trajectory with inertia (step s, inertia increments s/4, floor 0) and λ = γ^p for the next epoch.
Densities are fractions here (the paper writes them in %).
"""
from __future__ import annotations

import math
from dataclasses import dataclass


def retention(k: int, r_s: float, epochs: int, aggressivity: float = 6.0, r_e: float = 0.999) -> float:
    """Per-epoch retention factor r(k) (eq. 14)."""
    a = aggressivity / epochs
    return r_s + (r_e - r_s) / (1.0 + math.exp(-a * (k - epochs / 2.0)))


def trajectory(r_s: float, epochs: int, aggressivity: float = 6.0, r_e: float = 0.999) -> list[float]:
    """[D̂(1), …, D̂(E_p)] as fractions (eq. 13)."""
    out, d = [], 1.0
    for k in range(1, epochs + 1):
        d *= retention(k, r_s, epochs, aggressivity, r_e)
        out.append(d)
    return out


def solve_r_s(target_density: float, epochs: int, aggressivity: float = 6.0, r_e: float = 0.999,
              tol: float = 1e-8, max_iter: int = 100) -> float:
    """Bisection on [0, r_e] for the early retention r_s with D̂(E_p) = D* (D* a fraction)."""
    if not 0.0 < target_density <= 1.0:
        raise ValueError(f"target density {target_density} must be a fraction in (0, 1]")
    lo, hi = 0.0, r_e
    best, best_err = hi, math.inf
    for _ in range(max_iter):
        mid = 0.5 * (lo + hi)
        err = trajectory(mid, epochs, aggressivity, r_e)[-1] - target_density
        if abs(err) < best_err:
            best, best_err = mid, abs(err)
        if abs(err) < tol:
            break
        if err > 0:   # too dense at the end: retain less early
            hi = mid
        else:
            lo = mid
    return best


def scheduler_target(final_sparsity: float, regrowth_offset: float = 11.5 / 13) -> float:
    """D*: the density the pruning stage aims at, below the final target by ρ (spec §3.5)."""
    return (1.0 - final_sparsity) * regrowth_offset


def inertia_step(gamma: float, up: float, down: float, above: bool, s: float) -> tuple[float, float, float]:
    """Algorithm 1's γ move: up by s + inertia when the density is above its aim (the upward inertia grows by
    s/4, the downward one resets), else down likewise, floored at 0. Returns (γ, inertia_up, inertia_down)."""
    if above:
        return gamma + (s + up), up + s / 4, 0.0
    return max(gamma - (s + down), 0.0), 0.0, down + s / 4


@dataclass(kw_only=True)
class GammaController:
    """γ with its inertia (Algorithm 1); λ = γ^p. What the pruning scheduler and the regrowth hold share."""

    step_size: float = 0.2       # s
    exponent: float = 1.5        # p
    gamma: float = 0.0
    inertia_up: float = 0.0
    inertia_down: float = 0.0

    def update(self, above: bool) -> float:
        """One γ move (:func:`inertia_step`); returns λ."""
        self.gamma, self.inertia_up, self.inertia_down = inertia_step(
            self.gamma, self.inertia_up, self.inertia_down, above, self.step_size)
        return self.lam

    @property
    def lam(self) -> float:
        return max(self.gamma, 0.0) ** self.exponent

    def state_dict(self) -> dict:
        return {"gamma": self.gamma, "inertia_up": self.inertia_up, "inertia_down": self.inertia_down}

    def load_state_dict(self, state: dict) -> None:
        self.gamma, self.inertia_up, self.inertia_down = state["gamma"], state["inertia_up"], state["inertia_down"]


@dataclass(kw_only=True)
class DensityHold(GammaController):
    """Closed-loop regrowth: Algorithm 1's γ rule aimed at a constant density D_f (a fraction). γ starts at 0
    (λ = 0, the paper's free regrowth) and rises only when regrowth overshoots D_f; it falls back when the
    density is below."""

    target_density: float

    def step(self, density: float) -> float:
        return self.update(density > self.target_density)


@dataclass(kw_only=True)
class PressureScheduler(GammaController):
    """Algorithm 1 along the target-density trajectory; ``step`` returns λ = γ^p for the next epoch."""

    target_density: float        # D*, a fraction
    epochs: int                  # E_p
    aggressivity: float = 6.0    # A
    end_retention: float = 0.999  # r_e

    def __post_init__(self):
        self.r_s = solve_r_s(self.target_density, self.epochs, self.aggressivity, self.end_retention)
        self.expected = trajectory(self.r_s, self.epochs, self.aggressivity, self.end_retention)

    def expected_density(self, e: int) -> float:
        """D̂(e) for pruning epoch e = 1..E_p (held at D* after)."""
        return self.expected[min(max(e, 1), self.epochs) - 1]

    def step(self, e: int, density: float) -> float:
        """Update γ after pruning epoch ``e`` with the measured density (a fraction; strict comparison, A6)."""
        return self.update(density > self.expected_density(e))


def flow_lr(epoch: int, base_lr: float, pruning_epochs: int, regrowth_scale: float = 5.0,
            regrowth_decay: float = 0.75, zero_after: int = 50, first_power: int = 0) -> float:
    """η_t of 0-based ``epoch``: constant η_t while pruning; from the first regrowth epoch
    κ·η_t·δ^(k + first_power) (k = 0, 1, …), and 0 once k ≥ ``zero_after`` (eq. 12). ``first_power`` = 1 is
    the authors' code (their LambdaLR has already stepped once when regrowth starts)."""
    if epoch < pruning_epochs:
        return base_lr
    k = epoch - pruning_epochs
    return 0.0 if k >= zero_after else base_lr * regrowth_scale * regrowth_decay ** (k + first_power)


def snap_threshold(ts: list, keep: int) -> float:
    """τ such that exactly the ``keep`` largest flow values satisfy t − τ ≥ 0 (ties aside): the k-th largest t."""
    import torch

    flat = torch.cat([t.detach().flatten().float() for t in ts])
    keep = min(max(int(keep), 1), flat.numel())
    return float(torch.topk(flat, keep, sorted=False).values.min())


def cost_threshold(ts: list, cost, budget: float) -> float:
    """τ such that the flows with t − τ ≥ 0 are the largest ones whose units' widths cost closest to ``budget``
    (``cost``: a :class:`~experiments.sparsity.width_cost.WidthCost`, one ``ts`` tensor per unit; every unit keeps
    its largest flow whatever τ, as channel removal does): the prefix of the flows sorted from the largest that
    either first reaches the budget or stops one flow short of it, whichever is closer (a tie keeps the larger) —
    :func:`snap_threshold`'s k counted in MACs or parameters, off by at most half a channel's cost."""
    import torch

    kept = [1] * len(ts)
    now = cost.cost(kept)
    rest = [(float(v), u) for u, t in enumerate(ts) for v in torch.sort(t.detach().flatten().float(),
                                                                          descending=True).values[1:].tolist()]
    tau = max(float(t.detach().max()) for t in ts) + 1.0   # nothing open: each unit keeps its largest only
    for value, u in sorted(rest, key=lambda x: -x[0]):
        if now >= budget - 1e-9:
            break
        after = now + cost.marginal(kept)[u]
        if after >= budget - 1e-9 and after - budget > budget - now:   # stopping short is closer
            break
        now = after
        kept[u] += 1
        tau = value
    return tau
