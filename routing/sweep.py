"""Threshold sweep over cached outputs, and the choice of the operating point on validation.

A policy gives each input a confidence-like ``score``; an input is escalated to the full model
iff ``score < τ``. τ runs over quantiles of the *validation* scores (MSDNet's budgeted evaluation,
ecosystem notes §6) plus ±∞ (static pruned / static full), is chosen on validation and applied to test.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from experiments.errors import ConfigError

from .costs import cascade_cost, mixture_cost


def quantile_thresholds(val_scores, n_points: int) -> np.ndarray:
    """Sorted unique thresholds: −∞, the ``n_points`` evenly spaced quantiles of ``val_scores``, +∞."""
    s = np.asarray(val_scores, dtype=float)
    qs = np.quantile(s, np.linspace(0.0, 1.0, n_points)) if len(s) else np.array([])
    return np.unique(np.concatenate([[-np.inf], qs, [np.inf]]))


def route_outcome(scores, thresholds, pruned_correct, full_correct) -> tuple[np.ndarray, np.ndarray]:
    """Escalation rate and accuracy (%) for every threshold: vectorised over a (τ, input) grid."""
    s = torch.as_tensor(np.asarray(scores, dtype=float))
    t = torch.as_tensor(np.asarray(thresholds, dtype=float))
    pc = torch.as_tensor(np.asarray(pruned_correct, dtype=bool))
    fc = torch.as_tensor(np.asarray(full_correct, dtype=bool))
    esc = s[None, :] < t[:, None]
    correct = torch.where(esc, fc[None, :], pc[None, :])
    return esc.double().mean(1).numpy(), 100.0 * correct.double().mean(1).numpy()


def sweep(val_scores, test_scores, val_correct: tuple, test_correct: tuple, c_full: float, c_pruned: float,
          thresholds=None, n_points: int = 64) -> pd.DataFrame:
    """One row per τ: val/test escalation and accuracy, and costs in MACs and relative to the full model.

    ``*_correct = (pruned_correct, full_correct)`` boolean arrays; costs are per-image MACs.
    """
    thr = quantile_thresholds(val_scores, n_points) if thresholds is None else np.asarray(thresholds, float)
    esc_v, acc_v = route_outcome(val_scores, thr, *val_correct)
    esc_t, acc_t = route_outcome(test_scores, thr, *test_correct)
    df = pd.DataFrame({"tau": thr, "escalation_val": esc_v, "acc_val": acc_v,
                       "escalation_test": esc_t, "acc_test": acc_t})
    df["macs_mixture"] = mixture_cost(esc_t, c_full, c_pruned)
    df["macs_cascade"] = cascade_cost(esc_t, c_full, c_pruned)
    df["cost_mixture"] = df["macs_mixture"] / c_full
    df["cost_cascade"] = df["macs_cascade"] / c_full
    return df


def select_point(escalation, acc, reference_acc: float, tolerance: float = 0.1, mode: str = "match_full",
                 target_rate: float | None = None) -> int:
    """Index of the operating point (use validation columns).

    ``match_full``: the least escalation (hence cheapest under both conventions) whose accuracy is
    ≥ ``reference_acc − tolerance``; if none reaches it, the most accurate point (least escalation on ties).
    ``target_rate``: the escalation rate closest to ``target_rate`` (the paper's 48.5 %).
    """
    esc = np.asarray(escalation, dtype=float)
    acc = np.asarray(acc, dtype=float)
    if mode == "target_rate":
        if target_rate is None:
            raise ConfigError("routing.selection=target_rate needs routing.target_rate (e.g. 0.485)")
        return int(np.lexsort((esc, np.abs(esc - target_rate)))[0])
    if mode != "match_full":
        raise ConfigError(f"routing.selection={mode!r} is not one of ['match_full', 'target_rate']")
    ok = np.flatnonzero(acc >= reference_acc - tolerance - 1e-9)
    if len(ok):
        return int(ok[np.argmin(esc[ok])])
    best = np.flatnonzero(acc == acc.max())
    return int(best[np.argmin(esc[best])])
