"""Algorithm 1 against the spec's worked examples (hyperflows.md §3.1–3.2) and a hand trace."""
from __future__ import annotations

import pytest

from hyperflows.scheduler import PressureScheduler, flow_lr, scheduler_target, solve_r_s, trajectory


@pytest.mark.parametrize("d_star, r_s, expected", [
    (8.85, 0.9529, [95.5, 63.7, 33.9, 15.2, 10.2, 9.2, 8.85]),
    (4.42, 0.9394, [94.2, 55.8, 24.7, 8.8, 5.3, 4.6, 4.42]),
    (1.77, 0.9218, [92.6, 46.8, 16.3, 4.2, 2.2, 1.9, 1.77]),
])
def test_trajectory_matches_spec_worked_examples(d_star, r_s, expected):
    """The spec writes densities in %; the code works in fractions."""
    found = solve_r_s(d_star / 100, 100)
    assert found == pytest.approx(r_s, abs=5e-5)
    d = trajectory(found, 100)
    got = [100 * d[e - 1] for e in (1, 10, 25, 50, 75, 90, 100)]
    assert got == pytest.approx(expected, abs=0.051)
    assert 100 * d[-1] == pytest.approx(d_star, abs=1e-4)


def test_scheduler_target_uses_regrowth_offset():
    assert scheduler_target(0.9) == pytest.approx(0.08846, abs=1e-5)   # (1 − 0.9) · 11.5/13
    assert scheduler_target(0.98, 1.0) == pytest.approx(0.02)


def test_solve_r_s_rejects_a_density_in_percent():
    with pytest.raises(ValueError, match="fraction"):
        solve_r_s(8.85, 100)


def test_gamma_update_with_inertia_and_floor_hand_trace():
    s = PressureScheduler(target_density=0.0885, epochs=100, step_size=0.2)
    above, below = 1000.0, 0.0
    trace = [s.step(1, above), s.step(2, above), s.step(3, above), s.step(4, below), s.step(5, below)]
    # γ: 0.2 (I+ .05) → 0.45 (I+ .1) → 0.75 (I+ .15) → 0.55 (I− .05) → 0.30 (I− .1)
    assert [round(x, 6) for x in trace] == [round(g ** 1.5, 6) for g in (0.2, 0.45, 0.75, 0.55, 0.30)]
    assert s.step(6, below) == 0.0 and s.gamma == 0.0                 # 0.30 − 0.30 → floored at 0
    assert s.step(7, below) == 0.0 and s.gamma == 0.0                 # stays floored (0 − 0.35 → 0)
    s2 = PressureScheduler(target_density=0.0885, epochs=100, step_size=0.2)
    s2.load_state_dict(s.state_dict())
    assert s2.step(8, above) == pytest.approx(s.step(8, above))


def test_comparison_is_strict():
    s = PressureScheduler(target_density=0.0885, epochs=100)
    s.step(1, s.expected_density(1))          # equal → "ahead of schedule" branch
    assert s.gamma == 0.0 and s.inertia_down == pytest.approx(0.05)


def test_flow_lr_schedule_resets_decays_and_stops():
    lrs = [flow_lr(e, 1e-3, pruning_epochs=3, regrowth_scale=5, regrowth_decay=0.75, zero_after=2) for e in range(7)]
    assert lrs == pytest.approx([1e-3, 1e-3, 1e-3, 5e-3, 5e-3 * 0.75, 0.0, 0.0])
