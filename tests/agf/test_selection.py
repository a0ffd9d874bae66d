"""Selection and analysis helpers against worked examples and scipy."""
import math

import pytest
import torch
from scipy import stats as sps

from agf.analysis import dynamic_range, expected_random_jaccard, selection_summary, spearman, topk_jaccard
from experiments.sparsity.selection import jaccard, keep_count, select_keep
from experiments.stats import auroc


def test_keep_count_worked_examples():
    assert keep_count(1024, 0.75) == 256 and keep_count(1024, 0.875) == 128 and keep_count(1024, 0.96875) == 32
    assert keep_count(16, 0.75) == 4 and keep_count(3, 0.99) == 1 and keep_count(10, 0.75, round_to=4) == 4
    # a width that rounds to 0 is floored to one channel, then rounded up to the block: a multiple of round_to
    assert keep_count(16, 0.999, round_to=16) == 16 and keep_count(64, 0.999, round_to=16) == 16


def test_per_layer_topk_and_global_with_normalisation():
    s = {"a": torch.tensor([1.0, 5.0, 3.0, 4.0]), "b": torch.tensor([100.0, 300.0, 200.0, 400.0])}
    keep = select_keep(s, 0.5)
    assert keep["a"].tolist() == [1, 3] and keep["b"].tolist() == [1, 3]
    # global without normalisation: layer b's scale wins every slot (but each layer keeps >= 1)
    raw = select_keep(s, 0.5, global_ranking=True, normalize="none")
    assert raw["b"].tolist() == [0, 1, 2, 3] and raw["a"].tolist() == [1]
    # mean-normalised: a/mean(a)=[.31,1.54,.92,1.23], b/mean(b)=[.4,1.2,.8,1.6] -> top 4: b3, a1, a3, b1
    normed = select_keep(s, 0.5, global_ranking=True, normalize="mean")
    assert normed["a"].tolist() == [1, 3] and normed["b"].tolist() == [1, 3]


def test_jaccard_spearman_auroc_range():
    assert jaccard(torch.tensor([0, 1, 2]), torch.tensor([1, 2, 3])) == pytest.approx(0.5)
    a, b = torch.randn(50, generator=torch.Generator().manual_seed(0)), torch.randn(50)
    assert spearman(a, b) == pytest.approx(sps.spearmanr(a.numpy(), b.numpy()).statistic, abs=1e-9)
    assert topk_jaccard(a, a, 0.25) == 1.0 and topk_jaccard(a, -a, 0.25) == 0.0
    score, lab = torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([False, False, True, True])
    assert auroc(score, lab) == pytest.approx(0.75)          # pairs (pos>neg): 0.35>0.1, 0.8>both -> 3/4
    r = dynamic_range(torch.arange(1, 102, dtype=torch.float64))
    assert r["max_min"] == pytest.approx(101.0) and r["p99_p1"] == pytest.approx(100.0 / 2.0)
    assert math.isnan(auroc(score, torch.zeros(4, dtype=torch.bool)))


@pytest.mark.parametrize("n,k", [(6, 2), (7, 3), (5, 5), (8, 1)])
def test_expected_random_jaccard_equals_enumeration(n, k):
    import itertools
    sets = [set(c) for c in itertools.combinations(range(n), k)]
    brute = sum(len(a & b) / len(a | b) for a in sets for b in sets) / len(sets) ** 2
    assert expected_random_jaccard(n, k) == pytest.approx(brute)


def test_selection_summary_on_hand_made_scores():
    a = {"u1": torch.tensor([4.0, 3.0, 2.0, 1.0]), "u2": torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])}
    rev = {u: -v for u, v in a.items()}                      # the opposite ranking: disjoint top-25 % sets
    out = selection_summary({"agf": a, "l1": rev, "act": a}, [{"agf": a}, {"agf": a}, {"agf": rev}], 0.25)
    assert out["jaccard_agf_l1"] == 0.0 and out["jaccard_agf_act"] == 1.0
    # subsets: (a, a) agree, (a, rev) and (a, rev) are disjoint -> 1/3
    assert out["stability_jaccard_agf"] == pytest.approx(1 / 3)
    assert out["jaccard_random_expected"] == pytest.approx((expected_random_jaccard(4, 1) + expected_random_jaccard(8, 2)) / 2)
