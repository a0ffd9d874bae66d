"""AGF reports on synthetic records: the grouping keys the AGF experiments vary (scorer label, kept
width, calibration T, from-scratch), seed means/stds against numpy, paired differences by hand, the paper's
numbers beside ours, one-line errors."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from experiments.results import ResultsStore
from flowprune.reports import agf_phase as agf_phase_transition
from flowprune.reports import agf_stress as agf_stress_table
from flowprune.reports import agf_vit as agf_vit_bottleneck
from flowprune.reports.agf_common import runs


def record(experiment, scorer, target, seed, acc, *, method="structured", T=10, scratch=False, finetune=True,
           dense=80.0, after=20.0, run_id=None):
    cfg = {"method": {"name": method, "finetune": finetune, "from_scratch": scratch},
           "model": {"name": "resnet8"}, "dataset": {"name": "fashion_mnist"}, "trainer": {"pretrain": {"epochs": 3}, "finetune": {"epochs": 1}}}
    if method == "structured":
        cfg["method"].update(scorer={"name": scorer}, target_sparsity=target, calibration={"batches": T})
    return {"run_id": run_id or f"{scorer}-{target}-{seed}-{T}-{scratch}", "experiment": experiment, "status": "ok",
            "seed": seed,
            "config": cfg, "metrics": {"test_acc": acc, "test_acc_best": acc + 1.0, "acc_after_prune": after,
                                       "dense_test_acc": dense, "sparsity": target or 0.0}}


def table(out, name):
    return pd.read_csv(out / "tables" / f"{name}.csv")


def cell(vals):
    a = np.asarray(vals, dtype=float)
    return f"{a.mean():.2f} ± {a.std(ddof=1):.2f}"


PT = "agf/phase_transition_proxy"
PT_ACC = {("agf", 0.75): [78.0, 79.0], ("agf", 0.96875): [70.0, 72.5], ("ria", 0.96875): [66.0, 69.0],
          ("random", 0.96875): [65.0, 60.0]}


@pytest.fixture
def pt_store(tmp_path):
    st = ResultsStore(tmp_path)
    for (scorer, target), accs in PT_ACC.items():
        for seed, acc in enumerate(accs):
            st.append(record(PT, scorer, target, seed, acc))
    for seed, acc in enumerate([40.0, 45.0]):
        st.append(record(PT, "agf", 0.96875, seed, acc, scratch=True))
    for seed, (acc, dense) in enumerate([(81.0, 79.0), (82.0, 80.0)]):
        st.append(record(PT, None, None, seed, acc, method="dense", dense=dense))
    for seed, (acc, dense) in enumerate([(83.0, 79.0), (84.0, 80.0)]):   # the same dense models, 3 ft epochs
        longer = record(PT, None, None, seed, acc, method="dense", dense=dense)
        longer["config"]["trainer"]["finetune"]["epochs"] = 3
        st.append(longer)
    st.append(record("other", "agf", 0.75, 0, 10.0))
    return tmp_path


def test_agf_runs_labels_settings_and_keeps_last_rerun(pt_store):
    df = runs(pt_store, PT)
    assert sorted(df.scorer.unique()) == ["agf", "agf (scratch)", "dense+ft", "random", "ria"]
    assert len(df) == 14
    # a re-run of one setting replaces it; a different calibration T is a different setting
    ResultsStore(pt_store).append(record(PT, "agf", 0.75, 0, 50.0, run_id="rerun"))
    ResultsStore(pt_store).append(record(PT, "agf", 0.75, 0, 60.0, T=100))
    df = runs(pt_store, PT)
    agf75 = df[(df.scorer == "agf") & (df.target == 0.75) & (df.seed == 0)].set_index("calib_T")
    assert len(df) == 15 and agf75.loc[10, "test_acc"] == 50.0 and agf75.loc[100, "test_acc"] == 60.0
    # so is a different fine-tuning budget
    longer = record(PT, "agf", 0.75, 0, 70.0)
    longer["config"]["trainer"]["finetune"]["epochs"] = 3
    ResultsStore(pt_store).append(longer)
    assert len(runs(pt_store, PT)) == 16


def test_phase_transition_table_and_figure(pt_store):
    agf_phase_transition.main(["--results-dir", str(pt_store), "--out", str(pt_store)])
    t = table(pt_store, "agf_phase_transition").set_index(["scorer", "epochs_after_prune", "kept_fraction"])
    assert t.loc[("agf", 1, 0.25), "test_acc"] == cell(PT_ACC["agf", 0.75])
    assert t.loc[("agf", 1, 0.03125), "test_acc_best"] == cell(np.add(PT_ACC["agf", 0.96875], 1.0))
    assert t.loc[("random", 1, 0.03125), "n"] == 2
    # from scratch: trained for the pretrain budget, its "after prune" accuracy is meaningless (blank)
    assert t.loc[("agf (scratch)", 3, 0.03125), "test_acc"] == cell([40.0, 45.0])
    assert pd.isna(t.loc[("agf (scratch)", 3, 0.03125), "acc_after_prune"])
    # the unpruned models (dense_test_acc of the dense+ft records) and the dense + extra fine-tuning control
    assert t.loc[("dense", 0, 1.0), "test_acc"] == cell([79.0, 80.0]) and t.loc[("dense", 0, 1.0), "n"] == 2
    assert t.loc[("dense+ft", 1, 1.0), "test_acc"] == cell([81.0, 82.0])
    assert t.loc[("dense+ft", 3, 1.0), "test_acc"] == cell([83.0, 84.0])
    rep = t["reported (k of 1024)"]
    assert rep[("agf", 1, 0.25)] == 70.75 and rep[("agf", 1, 0.03125)] == 68.40 and rep[("ria", 1, 0.03125)] == 68.97
    assert rep[("agf (scratch)", 3, 0.03125)] == 45.42 and rep[("dense", 0, 1.0)] == 68.66
    assert np.isnan(rep[("dense+ft", 1, 1.0)]) and rep[("random", 1, 0.03125)] == 67.79
    assert (pt_store / "figures" / "agf_phase_transition.png").stat().st_size > 0
    assert (pt_store / "figures" / "agf_phase_transition.pdf").exists()


VB = "agf/vit_bottleneck_proxy"


def test_vit_bottleneck_separates_calibration_T(tmp_path):
    st = ResultsStore(tmp_path)
    accs = {("agf", 0.5, 10): [70.0, 71.0], ("wanda", 0.5, 10): [68.0, 68.5], ("ria", 0.75, 10): [60.0, 62.0],
            ("agf", 0.5, 100): [69.0, 69.5]}
    for (scorer, target, T), vals in accs.items():
        for seed, acc in enumerate(vals):
            st.append(record(VB, scorer, target, seed, acc, T=T))
    for seed, (acc, dense) in enumerate([(73.0, 67.0), (74.0, 68.0)]):
        st.append(record(VB, None, None, seed, acc, method="dense", dense=dense))
    agf_vit_bottleneck.main(["--results-dir", str(tmp_path), "--out", str(tmp_path)])
    t = table(tmp_path, "agf_vit_bottleneck")
    t = t.assign(calib_T=t.calib_T.fillna(0)).set_index(["scorer", "kept_mlp_fraction", "calib_T"])
    assert len(t) == 6
    assert t.loc[("agf", 0.5, 10), "final"] == cell(accs["agf", 0.5, 10])
    assert t.loc[("agf", 0.5, 100), "peak"] == cell(np.add(accs["agf", 0.5, 100], 1.0))
    assert t.loc[("dense", 1.0, 0), "final"] == cell([67.0, 68.0])          # the unpruned models, no calibration
    assert t.loc[("dense+ft", 1.0, 0), "final"] == cell([73.0, 74.0])
    d = t["Δ peak vs wanda (paired, wins)"]   # same seed and width, Wanda at T = 10
    assert d[("agf", 0.5, 10)] == f"+2.25 ± {np.std([2.0, 2.5], ddof=1):.2f} (2/2)"
    assert d[("agf", 0.5, 100)] == "+1.00 ± 0.00 (2/2)" and pd.isna(d[("ria", 0.25, 10)])
    rep = t["reported peak (ViT-B)"]
    assert rep[("agf", 0.5, 10)] == 86.81 and rep[("wanda", 0.5, 10)] == 84.96 and rep[("ria", 0.25, 10)] == 82.24
    assert rep[("agf", 0.5, 100)] == pytest.approx(84.90 - 0.34) and rep[("dense", 1.0, 0)] == 91.50
    assert np.isnan(rep[("dense+ft", 1.0, 0)])


def test_stress_table_paired_differences(tmp_path):
    st = ResultsStore(tmp_path)
    acc = {"agf": [75.0, 70.0, 74.0], "random": [72.0, 71.0, 70.0], "l1": [60.0, 65.0, 70.0]}
    for scorer, vals in acc.items():
        for seed, a in enumerate(vals):
            st.append(record("agf/stress75_proxy", scorer, 0.75, seed, a))
    agf_stress_table.main(["--results-dir", str(tmp_path), "--out", str(tmp_path)])
    t = table(tmp_path, "agf_stress75_proxy").set_index("scorer")
    d = np.subtract(acc["agf"], acc["random"])  # +3, -1, +4
    assert t.loc["agf", "Δ final vs random (paired, wins)"] == f"{d.mean():+.2f} ± {d.std(ddof=1):.2f} (2/3)"
    d = np.subtract(acc["agf"], acc["l1"])  # +15, +5, +4
    assert t.loc["agf", "Δ final vs l1 (paired, wins)"] == f"{d.mean():+.2f} ± {d.std(ddof=1):.2f} (3/3)"
    assert t.loc["random", "Δ final vs random (paired, wins)"] == "+0.00 ± 0.00 (0/3)"
    assert t.loc["agf", "reported ImageNet top-1"] == 64.99 and list(t.index)[0] == "agf"  # sorted by final


def test_no_records_is_one_line_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        agf_vit_bottleneck.main(["--results-dir", str(tmp_path), "--out", str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "agf/vit_bottleneck_proxy" in err
