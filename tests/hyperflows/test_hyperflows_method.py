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
    assert h["density"][1] < 100.0                        # pressure removed weights during pruning
    assert h["lambda"][2] == 0.0 and h["lambda"][3] == 0.0  # regrowth stage: no pressure
    # flips account exactly for the density changes between epochs
    n = 266_200
    for e in range(1, 4):
        change = (h["flips_regrown"][e] - h["flips_pruned"][e]) / n * 100
        assert h["density"][e] - h["density"][e - 1] == pytest.approx(change, abs=1e-6)
    # the finalized model's zeros are exactly the pruned weights: recorded sparsity = 1 − density(t ≥ 0)
    assert m["sparsity"] == pytest.approx(1 - m["density"], abs=1e-4)
    assert m["gamma_final"] is not None and len(m["hyperflows_layer_density"]) == 3
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
