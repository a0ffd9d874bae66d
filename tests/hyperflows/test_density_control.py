"""Closed-loop density control of Hyperflows (DensityHold + snap) and the authors' timing options."""
from __future__ import annotations

import pytest
import torch
from conftest import TINY, compose_cfg

from experiments.pipeline import run
from hyperflows.method import Hyperflows
from hyperflows.scheduler import DensityHold, flow_lr, inertia_step, snap_threshold

FAST = TINY + ["method=hyperflows", "trainer.epochs=4", "method.pruning_epochs=2", "trainer.max_steps_per_epoch=3",
               "method.flow_lr=0.1", "method.scheduler.updates_per_epoch=3", "method.figures=false"]


def test_hold_controller_hand_trace():
    h = DensityHold(target_density=0.10, step_size=0.2, exponent=1.5)
    assert h.lam == 0.0                                   # regrowth starts free
    # above, above (inertia 0.05), below, below (inertia 0.05) -> 0.2, 0.45, 0.25, 0.0 (floored)
    trace = [h.step(0.12), h.step(0.11), h.step(0.09), h.step(0.09)]
    assert trace == pytest.approx([0.2 ** 1.5, 0.45 ** 1.5, 0.25 ** 1.5, 0.0])
    assert h.step(0.10) == 0.0                            # equal is not above (strict, A6)


def test_inertia_step_matches_algorithm_1():
    assert inertia_step(1.0, 0.05, 0.0, True, 0.2) == pytest.approx((1.25, 0.1, 0.0))
    assert inertia_step(1.0, 0.1, 0.05, False, 0.2) == pytest.approx((0.75, 0.0, 0.1))


def test_snap_threshold_keeps_exactly_k_largest_by_brute_force():
    g = torch.Generator().manual_seed(0)
    ts = [torch.randn(30, 20, generator=g), torch.randn(7, generator=g)]
    flat = torch.cat([t.flatten() for t in ts])
    for k in (1, 37, 300, flat.numel()):
        tau = snap_threshold(ts, k)
        assert int((flat >= tau).sum()) == k
        assert tau == pytest.approx(float(flat.sort(descending=True).values[k - 1]))


def test_closed_loop_lands_on_the_asked_sparsity_and_records_the_snap(tmp_path):
    m = run(compose_cfg(FAST + ["sparsity.target=0.7"], tmp_path))["metrics"]
    assert abs(m["sparsity"] - 0.7) <= 0.001 + 1e-9
    assert m["density_before_snap"] is not None and m["snap_flips"] >= 0
    if abs(m["density_before_snap"] - 0.3) > 0.001:   # the snap ran: it flipped exactly the excess
        assert m["snap_flips"] > 0


@pytest.mark.parametrize("extra", [[], ["model=lenet5", "method=hyperflows_structured", "sparsity.target=0.5"]])
def test_settle_epochs_snap_first_then_train_the_final_masks(tmp_path, extra):
    """``scheduler.settle_epochs=1``: the snap runs at the start of the last epoch and the masks stay fixed through
    it (no flips, λ = 0), so the model evaluated after finalize is the model the last epoch trained: same val."""
    over = FAST + ["sparsity.target=0.7", "method.scheduler.settle_epochs=1"] + extra
    m = run(compose_cfg(over, tmp_path))["metrics"]
    h = m["hyperflows_history"]
    target = 0.5 if extra else 0.3
    assert m["density"] == pytest.approx(target, abs=0.02 if extra else 0.001 + 1e-9)
    assert h["flips"][-1] == 0 and h["lambda"][-1] == 0.0
    assert h["density"][-1] == pytest.approx(m["density"])
    assert m["snap_flips"] >= 0 and m["density_before_snap"] == pytest.approx(h["density"][-2])
    assert m["val_acc"] == pytest.approx(m["val_acc_train_end"], abs=1e-6)


def test_settle_epochs_must_be_a_count(tmp_path):
    from experiments.pipeline import RunFailed
    with pytest.raises(RunFailed, match=r"method.scheduler.settle_epochs=-1 must be an integer >= 0"):
        run(compose_cfg(FAST + ["method.scheduler.settle_epochs=-1"], tmp_path))


def test_open_loop_does_not_snap(tmp_path):
    m = run(compose_cfg(FAST + ["sparsity.target=0.7", "method.scheduler.control=open_loop"], tmp_path))["metrics"]
    assert "density_before_snap" not in m
    assert m["sparsity"] == pytest.approx(1 - m["density"], abs=1e-4)


def test_authors_timing_options():
    assert flow_lr(3, 1e-3, 3, 5.0, 0.75, 50, first_power=1) == pytest.approx(1e-3 * 5 * 0.75)
    assert flow_lr(3, 1e-3, 3, 5.0, 0.75, 50) == pytest.approx(1e-3 * 5)
    h = Hyperflows(0.9, epochs=10, seed=0, pruning_epochs=6, regrowth={"start_delay": 1})
    assert (h.phases.pressure_epochs, h.phases.regrowth_epochs) == (7, 3)
    assert [p["epochs"] for p in h.schedule_phases()] == [7, 3]
    with pytest.raises(ValueError, match="start_delay"):
        Hyperflows(0.9, epochs=6, seed=0, pruning_epochs=6, regrowth={"start_delay": 1})


def test_method_lr_scales_every_phase_lr():
    base, scaled = Hyperflows(0.9, 10, 0), Hyperflows(0.9, 10, 0, lr=0.03)
    for key in ("lr_prune_start", "lr_prune_end", "lr_regrow_start", "lr_regrow_end"):
        assert getattr(scaled.weights, key) == pytest.approx(getattr(base.weights, key) * 0.3)
    with pytest.raises(ValueError, match="method.lr"):
        Hyperflows(0.9, 10, 0, lr=-1.0)


def test_paper_preset_is_open_loop_with_the_authors_timing():
    cfg = compose_cfg(["method=hyperflows_cifar"])
    assert cfg.method.scheduler.control == "open_loop"
    assert cfg.method.regrowth.start_delay == 1 and cfg.method.regrowth.flow_lr_first_power == 1
