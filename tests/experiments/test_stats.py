"""Paired deltas and verdicts against scipy on hand-made data."""
import math

import numpy as np
import pytest
from scipy import stats

from experiments.stats import (CONTRADICTED, HOLDS, INCONCLUSIVE, bootstrap_counts_interval, bootstrap_interval,
                               paired_delta, verdict)

A = [91.2, 90.8, 91.5, 91.0, 90.9]
B = [90.1, 90.6, 90.2, 90.4, 90.0]


def test_t_interval_matches_scipy_paired_ttest():
    d = paired_delta(A, B)
    ref = stats.ttest_rel(A, B).confidence_interval(0.95)
    assert d.mean == pytest.approx(np.mean(np.subtract(A, B)))
    assert (d.low, d.high) == pytest.approx((ref.low, ref.high), rel=1e-10)
    assert d.n == 5 and d.wins == 5


def test_other_confidence_levels_match_scipy():
    ref = stats.ttest_rel(A, B).confidence_interval(0.9)
    d = paired_delta(A, B, confidence=0.9)
    assert (d.low, d.high) == pytest.approx((ref.low, ref.high), rel=1e-10)


def test_verdicts_by_direction():
    better = paired_delta(A, B)
    assert verdict(better, +1) == HOLDS
    assert verdict(better, -1) == CONTRADICTED
    noisy = paired_delta([1.0, -1.0, 2.0], [0.0, 0.0, 0.0])   # CI contains 0
    assert verdict(noisy, +1) == INCONCLUSIVE and verdict(noisy, -1) == INCONCLUSIVE
    worse = paired_delta(B, A)
    assert verdict(worse, -1) == HOLDS and verdict(worse, +1) == CONTRADICTED


def test_single_pair_is_inconclusive_and_unequal_lengths_fail():
    d = paired_delta([1.0], [0.0])
    assert math.isnan(d.low) and verdict(d) == INCONCLUSIVE
    with pytest.raises(ValueError, match="length"):
        paired_delta([1.0, 2.0], [1.0])


def test_bootstrap_interval_matches_scipy_percentile_bootstrap():
    rng = np.random.default_rng(1)
    d = rng.normal(0.5, 1.0, size=400)
    mean, low, high = bootstrap_interval(d, resamples=20_000)
    ref = stats.bootstrap((d,), np.mean, confidence_level=0.95, method="percentile", n_resamples=20_000,
                          random_state=2).confidence_interval
    assert mean == pytest.approx(d.mean())
    assert low == pytest.approx(ref.low, abs=0.02) and high == pytest.approx(ref.high, abs=0.02)


def test_text_shows_mean_ci_and_wins():
    assert paired_delta(A, B).text() == "+0.82 [+0.28, +1.36] (5/5)"


def test_bootstrap_from_counts_equals_the_bootstrap_of_the_expanded_sample():
    counts = [[30, 400, 45], [12, 300, 20]]          # two strata (seeds) of a -1/0/+1 variable
    expanded = [np.repeat([-1.0, 0.0, 1.0], row) for row in counts]
    pooled = np.concatenate(expanded)
    mean, low, high = bootstrap_counts_interval([-1, 0, 1], counts, resamples=40_000, seed=1)
    assert mean == pytest.approx(pooled.mean())
    # reference: resample each stratum's items with replacement (the definition), many times
    rng = np.random.default_rng(2)
    ref = np.array([sum(e[rng.integers(0, e.size, e.size)].sum() for e in expanded) / pooled.size
                    for _ in range(20_000)])
    assert low == pytest.approx(np.quantile(ref, 0.025), abs=0.002)
    assert high == pytest.approx(np.quantile(ref, 0.975), abs=0.002)
