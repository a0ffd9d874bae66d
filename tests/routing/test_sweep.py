"""Threshold sweep: extremes are the static experts, random is the straight line, selection on val."""
import itertools

import numpy as np
import pytest

from routing.costs import random_expected_accuracy
from routing.sweep import quantile_thresholds, route_outcome, select_point, sweep


def make(n, seed):
    rng = np.random.default_rng(seed)
    scores = rng.random(n)
    pc = rng.random(n) < 0.3 + 0.6 * scores   # confident → more often right
    fc = rng.random(n) < 0.85
    return scores, pc, fc


def test_extremes_equal_static_experts():
    s_v, pc_v, fc_v = make(300, 0)
    s_t, pc_t, fc_t = make(400, 1)
    df = sweep(s_v, s_t, (pc_v, fc_v), (pc_t, fc_t), c_full=10.0, c_pruned=4.0, n_points=60)
    assert len(df) >= 50
    lo, hi = df.iloc[0], df.iloc[-1]
    assert lo["tau"] == -np.inf and hi["tau"] == np.inf
    assert lo["escalation_test"] == 0 and lo["acc_test"] == pytest.approx(100 * pc_t.mean())
    assert lo["cost_mixture"] == pytest.approx(0.4) and lo["cost_cascade"] == pytest.approx(0.4)
    assert hi["escalation_test"] == 1 and hi["acc_test"] == pytest.approx(100 * fc_t.mean())
    assert hi["cost_mixture"] == pytest.approx(1.0) and hi["cost_cascade"] == pytest.approx(1.4)
    # escalation on validation follows the quantile grid and never decreases along τ
    assert np.all(np.diff(df["escalation_val"]) >= 0) and np.all(np.diff(df["escalation_test"]) >= 0)


def test_route_outcome_matches_a_loop():
    s, pc, fc = make(50, 2)
    thr = quantile_thresholds(s, 7)
    esc, acc = route_outcome(s, thr, pc, fc)
    for t, e, a in zip(thr, esc, acc):
        routed = [f if si < t else p for si, p, f in zip(s, pc, fc)]
        assert e == pytest.approx(np.mean(s < t))
        assert a == pytest.approx(100 * np.mean(routed))


def test_random_policy_expectation_is_the_straight_line():
    # exact expectation by enumerating every escalated subset of size k (uniform random routing)
    pc = np.array([1, 0, 1, 1, 0, 1, 0, 1], bool)
    fc = np.array([1, 1, 1, 0, 1, 1, 1, 1], bool)
    n = len(pc)
    for k in range(n + 1):
        accs = []
        for subset in itertools.combinations(range(n), k):
            esc = np.zeros(n, bool)
            esc[list(subset)] = True
            accs.append(100 * np.where(esc, fc, pc).mean())
        assert np.mean(accs) == pytest.approx(random_expected_accuracy(k / n, 100 * fc.mean(), 100 * pc.mean()))


def test_select_point_match_full_picks_cheapest_on_validation():
    esc = np.array([0.0, 0.2, 0.4, 0.6, 1.0])
    acc = np.array([80.0, 88.0, 89.95, 90.2, 90.0])
    assert select_point(esc, acc, reference_acc=90.0, tolerance=0.1) == 2
    assert select_point(esc, acc, reference_acc=95.0, tolerance=0.1) == 3  # unreachable → most accurate
    assert select_point(esc, acc, 90.0, mode="target_rate", target_rate=0.485) == 2
    with pytest.raises(ValueError, match="routing.selection"):
        select_point(esc, acc, 90.0, mode="nope")
