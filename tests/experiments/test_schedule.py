import math

import pytest

from experiments.train.schedule import Phase, create_schedule


def test_cosine_matches_closed_form():
    s = create_schedule(epochs=10, lr=0.1, name="cosine", final_lr=0.001)
    for e in range(10):
        assert s.lr_at(e) == pytest.approx(0.001 + 0.5 * 0.099 * (1 + math.cos(math.pi * e / 10)))


def test_multistep_and_phase_reset():
    s = create_schedule(epochs=0, lr=0.0, phases=[
        {"epochs": 4, "lr": 0.1, "kind": "multistep", "milestones": [0.5, 0.75], "gamma": 0.1},
        {"epochs": 2, "lr": 0.05, "kind": "constant"}])
    assert [round(s.lr_at(e), 6) for e in range(6)] == [0.1, 0.1, 0.01, 0.001, 0.05, 0.05]
    assert s.epochs == 6
    assert s.lr_at(100) == pytest.approx(0.05)


def test_bad_kind_names_itself():
    with pytest.raises(ValueError, match="schedule kind"):
        Phase(epochs=1, lr=0.1, kind="bogus")
