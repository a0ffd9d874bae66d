import numpy as np

from routing.pareto import pareto_mask


def brute_force(costs, accs):
    keep = []
    for i in range(len(costs)):
        dominated = any(costs[j] <= costs[i] and accs[j] >= accs[i] and (costs[j] < costs[i] or accs[j] > accs[i])
                        for j in range(len(costs)))
        keep.append(not dominated)
    return np.array(keep)


def test_hand_made_set():
    costs = [0.3, 0.5, 0.5, 0.7, 0.8, 1.0, 0.4]
    accs = [80., 85., 84., 84., 90., 90., 79.]
    #        keep  keep  dom   dom  keep  dom   dom (cheaper 0.3 has 80 > 79)
    np.testing.assert_array_equal(pareto_mask(costs, accs), [1, 1, 0, 0, 1, 0, 0])


def test_duplicates_are_kept():
    np.testing.assert_array_equal(pareto_mask([1, 1, 2], [5, 5, 5]), [1, 1, 0])


def test_random_sets_match_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(20):
        c = rng.integers(0, 6, 15).astype(float)
        a = rng.integers(0, 6, 15).astype(float)
        np.testing.assert_array_equal(pareto_mask(c, a), brute_force(c, a))
