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


def expected_random_jaccard(n: int, k: int) -> float:
    """E[Jaccard] of two independent uniformly random k-subsets of n units: the overlap X is hypergeometric
    (n, k, k) and J = X / (2k − X) (the chance level that "nearly disjoint" selections are compared with)."""
    from scipy.stats import hypergeom

    if k <= 0:
        return float("nan")
    xs = range(max(0, 2 * k - n), k + 1)
    return float(sum(hypergeom.pmf(x, n, k, k) * x / (2 * k - x) for x in xs))


def selection_summary(scores: dict, splits: list[dict], keep_fraction: float) -> dict[str, float]:
    """Record-sized numbers of one calibration (spec §5): Jaccard of the top-``keep_fraction`` sets of AGF and each
    magnitude score (weight ℓ1 ``l1``, activation ``act``, gradient ``grad``), its chance level, and each scorer's
    stability (mean Jaccard over pairs of disjoint calibration subsets); all means over units."""
    import itertools

    out = {}
    agf = scores.get("agf")
    if agf is not None:
        for other in ("l1", "act", "grad", "wanda", "ria"):
            if other in scores:
                out[f"jaccard_agf_{other}"] = mean_over_units(topk_jaccard, agf, scores[other], keep_fraction)
        chance = [expected_random_jaccard(len(v), keep_count(len(v), 1.0 - keep_fraction)) for v in agf.values()]
        out["jaccard_random_expected"] = sum(chance) / len(chance)
    for name in (splits[0] if splits else {}):
        vals = [mean_over_units(topk_jaccard, a[name], b[name], keep_fraction)
                for a, b in itertools.combinations(splits, 2)]
        out[f"stability_jaccard_{name}"] = sum(vals) / len(vals)
    return out


def mean_over_units(fn, scores_a: dict, scores_b: dict, *args) -> float:
    vals = [fn(scores_a[u], scores_b[u], *args) for u in scores_a if u in scores_b]
    vals = [v for v in vals if v == v]
    return sum(vals) / len(vals) if vals else float("nan")


def dynamic_range(signal: torch.Tensor) -> dict[str, float]:
    """99th/1st percentile ratio and max/min of a positive per-input signal (the README's definition)."""
    s = signal.double().clamp_min(1e-30)
    q = torch.quantile(s, torch.tensor([0.01, 0.99], dtype=torch.float64))
    return {"p99_p1": float(q[1] / q[0]), "max_min": float(s.max() / s.min())}
