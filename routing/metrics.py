"""Small statistics for routing signals: AUROC of "the pruned expert is wrong" (AGF spec §5)."""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def auroc(error_scores, is_error) -> float:
    """Probability that a random wrong input gets a higher ``error_score`` than a random right one
    (ties count ½); the Mann–Whitney U statistic over the product of class sizes. NaN if one class is empty."""
    s = np.asarray(error_scores, dtype=float)
    y = np.asarray(is_error, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))
