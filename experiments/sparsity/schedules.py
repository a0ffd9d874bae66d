"""Schedules and layer allocations of the unstructured baselines (pure functions, no torch state).

- ``gmp_sparsity``: Zhu & Gupta's cubic sparsity ramp (GMP, GraNet);
- ``rigl_drop_fraction``: RigL's cosine-annealed drop fraction;
- ``granet_regen_rate``: GraNet's cosine-decayed neuroregeneration rate (``CosineDecay`` in its code);
- ``exponential_densities``: SynFlow's per-round density schedule (``--compression-schedule exponential``);
- ``erk_densities`` / ``apportion``: RigL's Erdős–Rényi-Kernel layer densities and exact integer counts.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence


def gmp_sparsity(step: float, final: float, initial: float = 0.0, start: float = 0.0,
                 duration: float = 0.0) -> float:
    """s(t) = s_f + (s_i − s_f)(1 − (t − t0)/(n·Δt))³ with t clipped to [t0, t0 + n·Δt].

    ``duration`` is n·Δt in steps; a zero duration jumps to ``final`` at ``start``.
    """
    if step < start:
        return float(initial)
    if duration <= 0:
        return float(final)
    frac = min((step - start) / duration, 1.0)
    return float(final + (initial - final) * (1.0 - frac) ** 3)


def rigl_drop_fraction(step: float, alpha: float, end: float) -> float:
    """f(t) = (α/2)(1 + cos(π t / T_end)) for t < T_end, 0 afterwards (RigL's cosine annealing)."""
    if end <= 0 or step >= end:
        return 0.0
    return 0.5 * alpha * (1.0 + math.cos(math.pi * step / end))


def granet_regen_rate(step: float, total: float, rate: float, min_rate: float = 0.005) -> float:
    """r(t) = r_min + (r_0 − r_min)(1 + cos(π t / T))/2: GraNet's ``CosineDecay`` (``CosineAnnealingLR``
    with ``eta_min=0.005`` over all training steps T), clipped at T."""
    if total <= 0:
        return float(rate)
    t = min(max(step, 0.0), total)
    return float(min_rate + (rate - min_rate) * 0.5 * (1.0 + math.cos(math.pi * t / total)))


def exponential_densities(density: float, rounds: int) -> list[float]:
    """SynFlow's exponential schedule: density after round k (1-based) is d^{k/R}; the last is d exactly."""
    if rounds < 1:
        raise ValueError(f"rounds={rounds} must be >= 1")
    out = [float(density) ** ((k + 1) / rounds) for k in range(rounds)]
    out[-1] = float(density)
    return out


def _numel(shape: Sequence[int]) -> int:
    return int(math.prod(int(s) for s in shape))


def erk_densities(shapes: Mapping[str, Sequence[int]], density: float,
                  erk_power_scale: float = 1.0) -> dict[str, float]:
    """Erdős–Rényi-Kernel densities (RigL, Evci et al. 2020, appendix; ``sparse_utils`` in its code).

    Layer l gets density ε·((Σ dims)/(Π dims))^p, with one ε chosen so Σ_l d_l·n_l = density·N. A layer
    whose density would exceed 1 is made dense and ε is re-solved over the rest (repeated until valid),
    so the total kept count stays exactly density·N.
    """
    if not 0.0 <= density <= 1.0:
        raise ValueError(f"density={density} must be in [0, 1]")
    names = list(shapes)
    if density >= 1.0:
        return {n: 1.0 for n in names}
    raw = {n: (sum(int(s) for s in shapes[n]) / _numel(shapes[n])) ** erk_power_scale for n in names}
    dense: set[str] = set()
    while True:
        rhs, divisor = 0.0, 0.0
        for n in names:
            size = _numel(shapes[n])
            if n in dense:
                rhs -= (1.0 - density) * size
            else:
                rhs += density * size
                divisor += raw[n] * size
        if divisor <= 0:  # every layer dense: only possible at density 1
            return {n: 1.0 for n in names}
        eps = rhs / divisor
        free = [n for n in names if n not in dense]
        top = max(raw[n] for n in free)
        if top * eps > 1.0:
            dense.update(n for n in free if raw[n] == top)
            continue
        return {n: 1.0 if n in dense else eps * raw[n] for n in names}


def apportion(densities: Mapping[str, float], sizes: Mapping[str, int], total: int) -> dict[str, int]:
    """Integer kept counts per layer that sum to ``total``: floor(d_l·n_l), then the remaining units go
    to the largest remainders (never above a layer's size)."""
    exact = {n: densities[n] * sizes[n] for n in densities}
    counts = {n: min(int(math.floor(v)), sizes[n]) for n, v in exact.items()}
    left = int(total) - sum(counts.values())
    for n in sorted(exact, key=lambda n: exact[n] - counts[n]):  # float round-off only
        if left >= 0:
            break
        if counts[n] > 0:
            counts[n] -= 1
            left += 1
    order = sorted(exact, key=lambda n: exact[n] - counts[n], reverse=True)
    while left > 0:
        progressed = False
        for n in order:
            if left == 0:
                break
            if counts[n] < sizes[n]:
                counts[n] += 1
                left -= 1
                progressed = True
        if not progressed:
            raise ValueError(f"cannot keep {total} weights in layers of {sum(sizes.values())}")
    return counts
