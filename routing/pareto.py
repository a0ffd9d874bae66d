"""Pareto frontier of (cost, accuracy) points: lower cost and higher accuracy are better."""
from __future__ import annotations

import numpy as np


def pareto_mask(costs, accs) -> np.ndarray:
    """Boolean mask of the non-dominated points.

    A point is dominated when another point has cost ≤ and accuracy ≥ with at least one strict.
    Duplicated points are all kept (none strictly dominates its copy). Sort by cost (ties: best
    accuracy first) and keep a point when its accuracy beats every strictly cheaper one.
    """
    costs = np.asarray(costs, dtype=float)
    accs = np.asarray(accs, dtype=float)
    order = np.lexsort((-accs, costs))
    keep = np.zeros(len(costs), dtype=bool)
    best = -np.inf
    i = 0
    while i < len(order):  # walk groups of equal cost
        j = i
        while j < len(order) and costs[order[j]] == costs[order[i]]:
            j += 1
        group = order[i:j]
        top = accs[group].max()
        if top > best:
            keep[group[accs[group] == top]] = True
            best = top
        i = j
    return keep
