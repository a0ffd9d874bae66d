import itertools

import numpy as np
import pytest

from experiments.stats import auroc


def pairwise(scores, labels):
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_auroc_matches_pair_counting_with_ties():
    rng = np.random.default_rng(1)
    s = rng.integers(0, 5, 40).astype(float)
    y = rng.random(40) < 0.4
    assert auroc(s, y) == pytest.approx(pairwise(s, y))


def test_auroc_extremes():
    assert auroc([0, 1, 2, 3], [0, 0, 1, 1]) == 1.0
    assert auroc([3, 2, 1, 0], [0, 0, 1, 1]) == 0.0
    assert np.isnan(auroc([1, 2], [1, 1]))
