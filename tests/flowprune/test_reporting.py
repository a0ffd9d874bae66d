"""Reports on synthetic records: aggregation vs numpy, table cells, re-run dedup, reported numbers
beside ours, one-line errors."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from experiments.results import ResultsStore
from flowprune.reports import common as reporting
from flowprune.reports import plot as plot_runs
from flowprune.reports import table as make_table
from flowprune.reports import table1 as hyperflows_table1
from hyperflows.reported import TABLE1, reported_table1, reported_table2


def record(experiment, method, target, seed, acc, sparsity, model="lenet300", dataset="fashion_mnist",
           dense=90.0, status="ok", run_id=None):
    return {"run_id": run_id or f"{method}-{target}-{seed}", "experiment": experiment, "status": status,
            "seed": seed, "config": {"method": {"name": method}, "model": {"name": model},
                                     "dataset": {"name": dataset}, "sparsity": {"target": target}},
            "metrics": {"test_acc": acc, "test_acc_best": acc + 0.5, "sparsity": sparsity, "dense_test_acc": dense}}


ACC = {0: 81.25, 1: 82.0, 2: 83.5}  # per seed at 90 %


@pytest.fixture
def store(tmp_path):
    st = ResultsStore(tmp_path)
    for seed, acc in ACC.items():
        st.append(record("sweep", "magnitude", 0.9, seed, acc, 0.9 + 0.001 * seed))
        st.append(record("sweep", "magnitude", 0.95, seed, acc - 2, 0.95))
    st.append(record("sweep", "magnitude", 0.95, 0, 10.0, 0.95, status="failed"))
    st.append(record("other", "magnitude", 0.9, 0, 50.0, 0.9))
    return tmp_path


def test_mean_std_matches_numpy():
    vals = [81.25, 82.0, 83.5, 70.0]
    df = pd.DataFrame({"g": ["a", "a", "a", "b"], "acc": vals})
    out = reporting.mean_std(df, ["g"], ["acc"]).set_index("g")
    a = np.array(vals[:3])
    assert out.loc["a", "n"] == 3 and out.loc["b", "n"] == 1
    assert out.loc["a", "acc_mean"] == pytest.approx(a.mean())
    assert out.loc["a", "acc_std"] == pytest.approx(a.std(ddof=1))
    assert out.loc["a", "acc"] == f"{a.mean():.2f} ± {a.std(ddof=1):.2f}"
    assert out.loc["b", "acc"] == "70.00"  # one seed: no std


def test_load_runs_flattens_filters_and_keeps_last_rerun(store):
    df = reporting.load_runs(store, "sweep")
    assert len(df) == 6 and set(df["status"]) == {"ok"}
    row = df[(df["target"] == 0.9) & (df["seed"] == 1)].iloc[0]
    assert (row["method"], row["model"], row["dataset"], row["test_acc"]) == ("magnitude", "lenet300", "fashion_mnist", 82.0)
    assert isinstance(row["config"], dict)
    assert len(reporting.load_runs(store, "sweep", status=None)) == 7 - 1  # failed re-run replaces ok one
    ResultsStore(store).append(record("sweep", "magnitude", 0.9, 1, 99.0, 0.9, run_id="rerun"))
    df = reporting.load_runs(store, "sweep")
    again = df[(df["target"] == 0.9) & (df["seed"] == 1)]
    assert len(df) == 6 and list(again["run_id"]) == ["rerun"] and list(again["test_acc"]) == [99.0]


def test_make_table_cells(store):
    assert make_table.main(["--results-dir", str(store), "--experiment", "sweep", "--rows", "method",
                            "--cols", "sparsity", "--name", "t"]) == 0
    csv = pd.read_csv(store / "tables" / "t.csv")
    assert list(csv.columns) == ["method", "90%", "95%"]
    a = np.array(list(ACC.values()))
    assert csv.loc[0, "90%"] == f"{a.mean():.2f} ± {a.std(ddof=1):.2f} (3) [s=0.901]"
    assert csv.loc[0, "95%"] == f"{a.mean() - 2:.2f} ± {a.std(ddof=1):.2f} (3) [s=0.950]"
    md = (store / "tables" / "t.md").read_text()
    assert "| magnitude | 82.25 ± 1.15 (3) [s=0.901] |" in md
    assert (store / "tables" / "t.tex").read_text().startswith("\\begin{tabular}")


def test_no_records_is_one_line_exit_2(store, capsys):
    for script in (make_table, plot_runs, hyperflows_table1):
        with pytest.raises(SystemExit) as exc:
            script.main(["--results-dir", str(store), "--experiment", "missing"])
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith("error: no ok records of experiment 'missing'")
    with pytest.raises(SystemExit):
        make_table.main(["--results-dir", str(store), "--experiment", "sweep", "--rows", "nope"])
    assert capsys.readouterr().err.startswith("error: unknown key 'nope'")


def test_plot_runs_writes_png_and_pdf(store):
    assert plot_runs.main(["--results-dir", str(store), "--experiment", "sweep", "--logx"]) == 0
    assert {p.name for p in (store / "figures").iterdir()} == {"sweep_test_acc_vs_target.png",
                                                               "sweep_test_acc_vs_target.pdf"}


def test_reported_transcription():
    t = reported_table1()
    assert len(t) == 2 * 2 * 3 * (9 + 1)
    get = lambda m, model, ds, tg: t[(t.method == m) & (t.model == model) & (t.dataset == ds)  # noqa: E731
                                     & (t.target == tg)][["acc_mean", "acc_std"]].iloc[0].tolist()
    assert get("Hyperflows", "resnet50_cifar", "cifar10", 0.9) == [95.41, 0.12]
    assert get("RigL", "resnet50_cifar", "cifar10", 0.9) == [94.45, 0.43]  # "94.450.43" in the text
    assert get("Hyperflows", "vgg19_cifar", "cifar100", 0.98) == [72.9, 0.05]
    assert get("Dense", "vgg19_cifar", "cifar10", 0.95) == [93.85, 0.06]
    assert np.isnan(get("SNIP", "vgg19_cifar", "cifar100", 0.98)[1])
    assert all(len(cells) == 6 for rows in TABLE1.values() for cells in rows.values())
    t2 = reported_table2()
    assert t2[(t2.method == "Hyperflows") & (t2.target == 0.95)]["acc_mean"].item() == 72.44


def test_hyperflows_table1_places_reported_beside_ours(tmp_path):
    st = ResultsStore(tmp_path)
    for model in ("resnet50_cifar", "vgg19_cifar"):
        for seed, dense in ((0, 94.0), (1, 94.5)):
            for method in ("hyperflows", "gmp"):
                for target in (0.9, 0.95):
                    st.append(record("hyperflows/table1", method, target, seed, 90.0 + seed, target, model=model,
                                     dataset="cifar10", dense=dense, run_id=f"{model}{method}{target}{seed}"))
    st.append(record("hyperflows/table1_proxy", "hyperflows", 0.9, 0, 88.0, 0.9))
    assert hyperflows_table1.main(["--results-dir", str(tmp_path)]) == 0
    t = pd.read_csv(tmp_path / "tables" / "table1.csv", keep_default_na=False).set_index("method")
    rows = list(t.index)
    assert rows[:4] == ["dense", "Dense (reported)", "hyperflows", "Hyperflows (reported)"]
    # paper order SNIP, GraSP (method=grasp, so beside it), SynFlow; the paper-only baselines STR and SIS last
    assert rows.index("gmp") < rows.index("SNIP (reported)") < rows.index("GraSP (reported)") \
        < rows.index("SynFlow (reported)")
    assert rows[-2:] == ["STR (reported)", "SIS (reported)"]
    col = "resnet50_cifar / cifar10 / 90%"
    assert t.loc["Hyperflows (reported)", col] == "95.41 ± 0.12"
    assert t.loc["Dense (reported)", "vgg19_cifar / cifar10 / 95%"] == "93.85 ± 0.06"
    assert t.loc["hyperflows", col] == f"90.50 ± {np.std([90, 91], ddof=1):.2f} (2) [s=0.900]"
    assert t.loc["dense", col] == f"94.25 ± {np.std([94, 94.5], ddof=1):.2f} (2) [s=0.000]"
    assert t.loc["Hyperflows (reported)", "lenet300 / fashion_mnist / 90%"] == ""
    assert "resnet50_cifar / cifar10 / 98%" not in t.columns  # only the columns we ran
    assert "No reported numbers for lenet300/fashion_mnist" in (tmp_path / "tables" / "table1.md").read_text()
    figs = {p.name for p in (tmp_path / "figures").iterdir()}
    assert {"table1_resnet50_cifar_cifar10.png", "table1_resnet50_cifar_cifar10.pdf",
            "table1_lenet300_fashion_mnist.pdf"} <= figs


def test_markdown_table_and_empty_table(tmp_path):
    df = pd.DataFrame({"arm": ["agf", "l1"], "acc": [88.84, float("nan")]})
    assert reporting.markdown(df).splitlines() == ["| arm | acc |", "|---|---|", "| agf | 88.84 |", "| l1 |  |"]
    path = reporting.write_table(pd.DataFrame([]), "paired", tmp_path, "Paired by seed.")
    text = path.read_text()
    assert "no rows yet" in text and "|" not in text
