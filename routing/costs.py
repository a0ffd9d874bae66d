"""Cost conventions of a two-expert router (AGF spec §4.3).

``p`` is the escalation rate (fraction of inputs sent to the full model); costs are per image, in
MACs or relative to the full model (``c_full = 1``).

* mixture (paper convention): each input pays for exactly one expert,
  ``p·C_full + (1−p)·C_pruned``; reproduces the paper's 0.92× (p = 0.485, C_pruned = 0.85).
* cascade (what a real cascade costs): every input runs the pruned expert first, escalated ones also
  run the full model, ``C_pruned + p·C_full``; the same numbers give 1.335×.
"""
from __future__ import annotations

import numpy as np


def mixture_cost(p, c_full: float, c_pruned: float):
    """Paper-convention cost ``p·C_full + (1−p)·C_pruned`` (never charges the pruned pass of escalated inputs)."""
    p = np.asarray(p, dtype=float)
    return p * c_full + (1.0 - p) * c_pruned


def cascade_cost(p, c_full: float, c_pruned: float):
    """Realistic cascade cost ``C_pruned + p·C_full`` (pruned pass always paid)."""
    p = np.asarray(p, dtype=float)
    return c_pruned + p * c_full


def break_even_rate(c_full: float, c_pruned: float) -> float:
    """Escalation rate below which the cascade is cheaper than the full model alone: ``1 − C_pruned/C_full``."""
    return 1.0 - c_pruned / c_full


def random_expected_accuracy(p, acc_full: float, acc_pruned: float):
    """Expected accuracy of routing a uniformly random fraction ``p`` to the full model (AGF §4.2):
    the straight line ``p·acc_full + (1−p)·acc_pruned``."""
    p = np.asarray(p, dtype=float)
    return p * acc_full + (1.0 - p) * acc_pruned
