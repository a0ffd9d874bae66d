"""The route stage inside the real pipeline, and the report script on its output."""
from pathlib import Path

import pandas as pd
import pytest
from conftest import TINY, compose_cfg

from experiments.pipeline import run


@pytest.fixture(scope="module")
def routed_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("route")
    # method=dense: the "pruned" expert is the dense model itself, so every number has a known value
    cfg = compose_cfg(TINY + ["method=dense", "dataset=fashion_mnist", "routing=confidence",
                              "routing.timing_repeats=1", "routing.timing_max_samples=256"], tmp)
    return run(cfg), tmp


def test_route_stage_records_metrics_and_files(routed_run):
    record, tmp = routed_run
    m = record["metrics"]
    assert record["status"] == "ok"
    assert m["routing_mac_ratio"] == pytest.approx(1.0)
    assert m["routing_pruned_acc"] == pytest.approx(m["routing_full_acc"]) == pytest.approx(m["test_acc"])
    assert m["routing_escalation_rate"] == 0.0 and m["routing_matches_full"]
    assert m["routing_cost_cascade"] == pytest.approx(1.0) and m["routing_cost_mixture"] == pytest.approx(1.0)
    curve = pd.read_csv(m["routing_curve_csv"])
    main = curve[curve.policy == "confidence"]
    assert len(main) >= 50 and set(curve.policy) >= {"confidence", "random", "oracle", "learned", "l1"}
    assert (main.acc_test == m["routing_full_acc"]).all()  # identical experts: every τ gives the same accuracy
    assert m["routing_wallclock_full_ms"] > 0
    for key in ("routing_figure", "routing_summary_csv"):
        assert Path(m[key]).is_file() and Path(m[key]).stat().st_size > 0, (key, m[key])


def test_report_script_writes_tables_and_figures(routed_run):
    from flowprune.reports import routing as mod

    record, tmp = routed_run
    assert mod.main(["--results-dir", str(tmp), "--experiment", "main"]) == 0
    sizes = pd.read_csv(tmp / "tables" / "routing_sizes.csv")
    assert sizes.cheapest_cascade.tolist() == [True]
    summary = (tmp / "tables" / "routing_summary.md").read_text()
    assert "88.78" in summary and "1.335" in summary  # the paper's adaptive row, both conventions
    assert (tmp / "figures" / "routing_pareto.png").exists() and (tmp / "figures" / "routing_pareto_signals.pdf").exists()
