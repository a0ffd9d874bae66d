"""Paired statistics of a comparison and the verdict on a claim.

Runs of a comparison are paired by seed (same dense checkpoint, same data order): the claim "A beats B" is
judged on the per-seed differences d_i = A_i − B_i, with a two-sided Student-t interval for their mean, or a
percentile bootstrap over the pairs (or over test samples, for the routing claims).
Also the AUROC that AGF's signal analysis and the routing report share.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
from scipy import stats as _st

HOLDS, CONTRADICTED, INCONCLUSIVE = "holds", "contradicted", "inconclusive"


@dataclass(frozen=True)
class PairedDelta:
    """Mean paired difference with its confidence interval."""

    mean: float
    low: float
    high: float
    n: int
    wins: int          # pairs where the difference has the claimed sign
    confidence: float
    method: str        # "t" or "bootstrap"

    def as_dict(self) -> dict:
        return asdict(self)

    def text(self, digits: int = 2) -> str:
        """``"+1.23 [+0.40, +2.06] (3/3)"``: mean, CI and the pairs that went the claimed way."""
        if self.n == 0 or self.mean != self.mean:
            return ""
        ci = "" if self.low != self.low else f" [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"
        return f"{self.mean:+.{digits}f}{ci} ({self.wins}/{self.n})"


def t_interval(diffs: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of the two-sided Student-t interval of the mean of ``diffs`` (n − 1 dof); the bounds
    are NaN for fewer than two values."""
    d = np.asarray(diffs, dtype=float)
    if d.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(d.mean())
    if d.size < 2:
        return mean, math.nan, math.nan
    half = float(_st.t.ppf(0.5 + confidence / 2, d.size - 1)) * float(d.std(ddof=1)) / math.sqrt(d.size)
    return mean, mean - half, mean + half


def bootstrap_interval(diffs: Sequence[float], confidence: float = 0.95, resamples: int = 10_000,
                       seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): percentile bootstrap of the mean of ``diffs`` (seeded, so tables are reproducible)."""
    d = np.asarray(diffs, dtype=float)
    if d.size == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(resamples, d.size))].mean(axis=1)
    alpha = (1 - confidence) / 2
    return float(d.mean()), float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def bootstrap_counts_interval(values: Sequence[float], counts: Sequence[Sequence[int]], confidence: float = 0.95,
                              resamples: int = 10_000, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): percentile bootstrap of the pooled mean of a discrete variable given as counts, one row of
    ``counts`` per stratum (e.g. per seed's test set; each stratum resampled with its own size). Resampling n
    items with replacement from a stratum draws its counts from Multinomial(n, counts/n), so this equals
    :func:`bootstrap_interval` on the expanded samples without materialising them (10⁴ test images × 10⁴ resamples)."""
    v = np.asarray(values, dtype=float)
    c = np.atleast_2d(np.asarray(counts, dtype=np.int64))
    total = int(c.sum())
    if total == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    sums = np.zeros(resamples)
    for row in c:
        n = int(row.sum())
        if n:
            sums += rng.multinomial(n, row / n, size=resamples) @ v
    means = sums / total
    alpha = (1 - confidence) / 2
    return float(c.sum(0) @ v / total), float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def paired_delta(a: Sequence[float], b: Sequence[float], confidence: float = 0.95, method: str = "t",
                 direction: int = 1) -> PairedDelta:
    """Δ = mean(a − b) over pairs (a_i, b_i) with its CI; ``wins`` counts pairs with sign(Δ_i) = ``direction``."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length ({a.size} vs {b.size})")
    d = a - b
    if method == "t":
        mean, low, high = t_interval(d, confidence)
    elif method == "bootstrap":
        mean, low, high = bootstrap_interval(d, confidence)
    else:
        raise ValueError(f"method={method!r}; use t or bootstrap")
    return PairedDelta(mean, low, high, int(d.size), int((np.sign(d) == np.sign(direction)).sum()),
                       confidence, method)


def verdict(delta: PairedDelta, direction: int = 1) -> str:
    """*holds* when the CI excludes 0 on the claimed side (``direction`` +1: Δ > 0 claimed, −1: Δ < 0),
    *contradicted* when it excludes 0 on the other side, *inconclusive* when it contains 0 (or is undefined)."""
    if direction not in (1, -1):
        raise ValueError(f"direction={direction}; use +1 or -1")
    low, high = delta.low * direction, delta.high * direction
    if direction == -1:
        low, high = high, low
    if low != low or high != high:
        return INCONCLUSIVE
    if low > 0:
        return HOLDS
    if high < 0:
        return CONTRADICTED
    return INCONCLUSIVE


def auroc(scores, positive) -> float:
    """Probability that a random positive gets a higher score than a random negative (ties count ½): the
    Mann–Whitney U statistic over the product of class sizes. Arrays or CPU tensors; NaN if a class is empty."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    u = _st.rankdata(s)[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))
