"""method=hyperflows through the real pipeline on tiny settings."""
from __future__ import annotations

import pytest
from conftest import TINY, compose_cfg

from experiments.pipeline import run

FAST = TINY + ["method=hyperflows", "method.scheduler.control=open_loop", "trainer.epochs=4", "method.pruning_epochs=2", "trainer.max_steps_per_epoch=3",
               "method.flow_lr=0.1", "method.scheduler.updates_per_epoch=3"]


def test_hyperflows_prunes_by_pressure_regrows_and_records_consistent_numbers(tmp_path):
    record = run(compose_cfg(FAST + ["sparsity.target=0.5"], tmp_path))
    assert record["status"] == "ok"
    m = record["metrics"]
    h = m["hyperflows_history"]
    assert len(h["density"]) == 4
    assert h["density"][1] < 1.0                          # pressure removed weights during pruning (fractions)
    assert h["lambda"][2] == 0.0 and h["lambda"][3] == 0.0  # regrowth stage: no pressure
    # flips account exactly for the density changes between epochs
    n = 266_200
    for e in range(1, 4):
        change = (h["flips_regrown"][e] - h["flips_pruned"][e]) / n
        assert h["density"][e] - h["density"][e - 1] == pytest.approx(change, abs=1e-6)
    # the finalized model's zeros are exactly the pruned weights: recorded sparsity = 1 − density(t ≥ 0)
    assert m["sparsity"] == pytest.approx(1 - m["density"], abs=1e-4)
    assert m["gamma_final"] is not None and len(m["layer_density"]) == 3
    assert m["density_prune_end"] == pytest.approx(h["density"][1])
    assert {p.rsplit("/", 1)[-1] for p in m["hyperflows_figures"]} >= {
        "hyperflows_curves.png", "hyperflows_layer_sparsity.png", "hyperflows_first_layer_mask.png",
        "hyperflows_weight_histograms.png"}


def test_fixed_lambda_without_regrowth_is_the_power_law_setting(tmp_path):
    cfg = compose_cfg(FAST + ["method.pressure.fixed_lambda=2.0", "method.pressure.threshold=0.3",
                              "method.pruning_fraction=1.0", "method.pruning_epochs=null", "method.from_scratch=true",
                              "stages=[prune,finetune,evaluate]", "method.figures=false"], tmp_path)
    record = run(cfg)
    h = record["metrics"]["hyperflows_history"]
    assert h["lambda"] == [2.0] * 4 and h["gamma"] == [None] * 4   # constant λ, no scheduler
    assert record["metrics"]["dense_test_acc"] is None             # from scratch: no dense model trained
    assert record["metrics"]["density"] < 1.0


def test_bad_hyperparameters_fail_with_one_line(tmp_path):
    from experiments.pipeline import RunFailed
    with pytest.raises(RunFailed, match="pruning_epochs"):
        run(compose_cfg(FAST + ["method.pruning_epochs=9"], tmp_path))


def test_intra_epoch_scheduler_ticks_follow_the_step_clock(tmp_path, monkeypatch):
    """updates_per_epoch=3 on 3 steps/epoch, 2 pruning epochs: Algorithm 1 runs after steps 1 and 2 of each
    pruning epoch (indices e·3 + q) and at the end of the first epoch (index 3), never in regrowth."""
    from hyperflows.scheduler import PressureScheduler

    calls = []
    step = PressureScheduler.step
    monkeypatch.setattr(PressureScheduler, "step", lambda self, e, density: calls.append(e) or step(self, e, density))
    record = run(compose_cfg(FAST + ["sparsity.target=0.5", "method.figures=false"], tmp_path))
    assert record["status"] == "ok"
    assert calls == [1, 2, 3, 4, 5]


def test_flow_stats_from_adams_first_moment_with_pressure_removed():
    """flow of a pruned weight = −(m_t − λ/n·[t > −threshold]), m_t = (1 − β1)·g after one Adam step."""
    import torch

    from hyperflows.flows import Flows
    from hyperflows.method import HyperflowsCallback
    from hyperflows.options import Phases, Pressure

    cb = object.__new__(HyperflowsCallback)   # only the fields flow_stats reads
    t = torch.nn.Parameter(torch.tensor([0.5, -0.2, -3.0, -0.1]))
    cb.flows = Flows(["w"], [t])
    cb.ts, cb.n, cb.lam, cb.epoch, cb.hold = cb.flows.ts, cb.flows.n, 2.0, 0, None
    cb.snapped = None                                   # before the settle snap
    cb.pressure, cb.phases = Pressure(threshold=1.0), Phases(1, 1, 0)
    cb.flow_opt = torch.optim.Adam([t], lr=1e-3)
    g = torch.tensor([0.3, -0.4, 0.2, 0.6])
    t.grad = g.clone()
    cb.flow_opt.step()
    masks = [torch.tensor([True, False, False, False])]   # t >= 0 before the step
    with torch.no_grad():                               # as in on_epoch_end
        out = cb.flow_stats(masks)
    # pruned: t = -0.2, -3.0, -0.1 (after a 1e-3 step: still < 0); pressure λ/n = 0.5 acts where t > -1
    m_t = 0.1 * g[1:]
    flow = -(m_t - 0.5 * torch.tensor([1.0, 0.0, 1.0]))     # [0.54, -0.02, 0.44]
    assert out["flow_mean_pruned"] == pytest.approx(float(flow.mean()))
    assert out["flow_positive_frac"] == pytest.approx(2 / 3)
    assert out["t_mean_pruned"] == pytest.approx(float(t.detach()[1:].mean()))
