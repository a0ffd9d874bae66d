"""Selection and signal analyses (spec §5): Jaccard / Spearman between scorers and calibration subsets,
dynamic range of the per-input gradient signal (the AUROC of zero-cost signals is ``experiments.stats.auroc``)."""
from __future__ import annotations

import torch

from experiments.sparsity.selection import jaccard, keep_count, topk_sorted


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman ρ (Pearson correlation of ranks; ties get distinct ranks in index order)."""
    ra = torch.argsort(torch.argsort(a.double(), stable=True)).double()
    rb = torch.argsort(torch.argsort(b.double(), stable=True)).double()
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = (ra.norm() * rb.norm()).item()
    return float((ra @ rb).item() / den) if den > 0 else float("nan")


def topk_jaccard(a: torch.Tensor, b: torch.Tensor, keep_fraction: float) -> float:
    k = keep_count(len(a), 1.0 - keep_fraction)
    return jaccard(topk_sorted(a, k), topk_sorted(b, k))


def mean_over_units(fn, scores_a: dict, scores_b: dict, *args) -> float:
    vals = [fn(scores_a[u], scores_b[u], *args) for u in scores_a if u in scores_b]
    vals = [v for v in vals if v == v]
    return sum(vals) / len(vals) if vals else float("nan")


def dynamic_range(signal: torch.Tensor) -> dict[str, float]:
    """99th/1st percentile ratio and max/min of a positive per-input signal (the README's definition)."""
    s = signal.double().clamp_min(1e-30)
    q = torch.quantile(s, torch.tensor([0.01, 0.99], dtype=torch.float64))
    return {"p99_p1": float(q[1] / q[0]), "max_min": float(s.max() / s.min())}
