"""Cost conventions against the spec's worked arithmetic (AGF spec §4.3) and the paper's table."""
import numpy as np
import pytest

from routing.costs import break_even_rate, cascade_cost, mixture_cost, random_expected_accuracy
from routing.reported import IMAGENET100_ROUTING, reported_rows


def test_mixture_reproduces_paper_092():
    # spec §4.3: 0.485·1 + 0.515·0.85 = 0.9227; random 0.5 + 0.425 = 0.925
    assert mixture_cost(0.485, 1.0, 0.85) == pytest.approx(0.92275)
    assert mixture_cost(0.5, 1.0, 0.85) == pytest.approx(0.925)


def test_cascade_charges_the_pruned_pass():
    # spec §4.3: a real cascade at the same numbers costs 0.85 + 0.485 = 1.335×
    assert cascade_cost(0.485, 1.0, 0.85) == pytest.approx(1.335)
    # in MACs: 2 GMAC pruned, 5 GMAC full, 10 % escalated → 2 + 0.5
    assert cascade_cost(0.1, 5e9, 2e9) == pytest.approx(2.5e9)
    assert mixture_cost(0.1, 5e9, 2e9) == pytest.approx(0.1 * 5e9 + 0.9 * 2e9)


def test_break_even_rate_is_where_cascade_equals_full():
    p = break_even_rate(1.0, 0.85)
    assert p == pytest.approx(0.15)
    assert cascade_cost(p, 1.0, 0.85) == pytest.approx(1.0)
    assert cascade_cost(p - 0.01, 1.0, 0.85) < 1.0 < cascade_cost(p + 0.01, 1.0, 0.85)


def test_cost_endpoints():
    assert mixture_cost(0.0, 1.0, 0.3) == pytest.approx(0.3)
    assert mixture_cost(1.0, 1.0, 0.3) == pytest.approx(1.0)
    assert cascade_cost(1.0, 1.0, 0.3) == pytest.approx(1.3)
    np.testing.assert_allclose(mixture_cost(np.array([0, 0.5]), 2.0, 1.0), [1.0, 1.5])


def test_random_line_matches_spec_example():
    # spec §4.2: p = 0.5 gives 84.27 with the paper's endpoints
    assert random_expected_accuracy(0.5, 88.74, 79.80) == pytest.approx(84.27)


def test_reported_table_costs():
    rows = {r["method"]: r for r in reported_rows()}
    assert len(rows) == len(IMAGENET100_ROUTING) == 4
    adaptive = rows["adaptive (confidence)"]
    assert adaptive["cost_mixture"] == pytest.approx(0.9228, abs=1e-4)
    assert round(adaptive["cost_mixture"], 2) == adaptive["cost"]  # the paper's 0.92× is the mixture cost
    assert adaptive["cost_cascade"] == pytest.approx(1.335)
    assert rows["static full"]["cost_cascade"] == 1.0
