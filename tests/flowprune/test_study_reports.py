"""Study reports on synthetic records: LR chosen on val, paired claims, the H2 curvature verdict."""
from __future__ import annotations

import numpy as np
import pytest

from experiments.results import ResultsStore
from flowprune.reports import study as study_hyperflows


def record(method, target, lr, seed, val, test, sparsity=None, variant=None, experiment="study/h1_lenet300"):
    m = {"name": method, "lr": lr, "pruning_fraction": 0.625, "scheduler": {"control": "closed_loop"}}
    if variant == "no_regrowth":
        m["pruning_fraction"] = 1.0
    return {"run_id": f"{method}-{target}-{lr}-{seed}-{variant}", "experiment": experiment, "status": "ok", "seed": seed,
            "config": {"method": m, "model": {"name": "lenet300"}, "dataset": {"name": "fashion_mnist"},
                       "sparsity": {"target": target}, "trainer": {"pretrain": {"epochs": 40}}, "stages": []},
            "metrics": {"val_acc": val, "test_acc": test, "test_acc_best": test,
                        "sparsity": target if sparsity is None else sparsity}}


def test_h1_cells_use_the_lr_chosen_on_validation_and_claims_pair_by_seed(tmp_path):
    store = ResultsStore(tmp_path)
    for lr, val in ((0.01, 80.0), (0.03, 85.0), (0.1, 82.0)):   # gmp: 0.03 wins on val (test says 0.1)
        store.append(record("gmp", 0.9, lr, 0, val, 90.0 if lr == 0.1 else 88.0), study=True)
    for lr, val in ((0.01, 81.0), (0.03, 80.0), (0.1, 79.0)):
        store.append(record("hyperflows", 0.9, lr, 0, val, 89.0), study=True)
    for seed in (1, 2):
        store.append(record("gmp", 0.9, 0.03, seed, 85.0, 88.0 + seed * 0.1), study=True)
        store.append(record("hyperflows", 0.9, 0.01, seed, 81.0, 89.0 + seed * 0.2), study=True)
    df, spec = study_hyperflows.study_runs(tmp_path, "h1_lenet300")
    assert study_hyperflows.chosen_lrs(df, spec) == {("lenet300", 0.9, "gmp"): 0.03, ("lenet300", 0.9, "hyperflows"): 0.01}
    final = study_hyperflows.final_runs(df, spec)
    assert sorted(final["lr"].unique()) == [0.01, 0.03] and len(final) == 6
    rows = [r for r in study_hyperflows.claims(tmp_path) if r["id"].startswith("H1")]
    diffs = np.array([89.0, 89.2, 89.4]) - np.array([88.0, 88.1, 88.2])
    assert rows[0]["verdict"] == "holds" and rows[0]["delta"].startswith(f"{diffs.mean():+.2f}")


def test_seeds_from_different_dense_checkpoints_are_not_pairs():
    import pandas as pd

    a, b = pd.Series({0: 91.0, 1: 90.0, 2: 90.5, 3: 90.2}), pd.Series({0: 92.0, 1: 89.0, 2: 89.7, 3: 89.4})
    same = pd.Series({0: 92.5, 1: 92.3, 2: 92.4, 3: 92.2})
    p = study_hyperflows.paired_by_seed(a, b, 1, same, same.replace(92.5, 92.9))   # seed 0 re-trained elsewhere
    diffs = np.array([90.0, 90.5, 90.2]) - np.array([89.0, 89.7, 89.4])
    assert p["seeds"] == 3 and p["crossed"] == 1 and p["delta"].text().startswith(f"{diffs.mean():+.2f}")
    assert p["verdict"] == "holds"                                     # the crossed seed 0 (Δ = -1) left out
    p = study_hyperflows.paired_by_seed(a.drop(3), b.drop(3), 1, same, same.replace(92.5, 92.9))
    assert p["seeds"] == 2 and p["verdict"].startswith("no verdict: 2 same-checkpoint pairs (seed 0 crossed")
    assert study_hyperflows.paired_by_seed(a.drop(3), b.drop(3), 1, same, same)["verdict"] == "inconclusive"
    assert study_hyperflows.paired_by_seed(a.drop([2, 3]), b.drop([2, 3])) is None   # too few, nothing crossed


def test_h2_curvature_verdict_from_per_seed_fits(tmp_path):
    store = ResultsStore(tmp_path)
    lams = [2.0 ** k for k in range(-6, 4)]
    rng = np.random.default_rng(0)
    for epochs, alpha1 in ((40, 0.1), (120, 0.04)):   # the longer budget: a smaller curvature
        for seed in range(3):
            for lam in lams:   # eq. (15) with c = 5 %, α0 = 0.8, 1 % noise; a settled density curve
                d = 5.0 * lam ** -(0.8 + alpha1 * np.log(lam)) * (1 + 0.01 * rng.standard_normal())
                r = record("hyperflows", 0.9, None, seed, None, 80.0, experiment="study/h2_lenet300")
                r["run_id"] += f"-{lam}-{epochs}"
                r["config"]["method"]["pressure"] = {"fixed_lambda": lam}
                r["config"]["trainer"]["epochs"] = epochs
                curve = [100.0] * (epochs // 2) + [d] * (epochs // 2)
                r["metrics"].update(density=d / 100, hyperflows_history={"density": curve})
                store.append(r, study=True)
    short, long = study_hyperflows.h2_claims(tmp_path)
    assert short["id"] == "H2 lenet300 40 ep" and short["verdict"] == "holds" and short["delta"].startswith("+0.1")
    assert long["id"] == "H2 lenet300 120 ep" and long["delta"].startswith("+0.04")
    assert "α1 at 40 ep − at 120 ep: +0.06" in long["ours"] and "h2_lenet300_e120" in long["command"]


def agf_record(scorer, lr, seed, val, test, method="structured", experiment="study/a1_resnet8", **method_kw):
    m = {"name": method, "lr": lr, "target_sparsity": 0.75, "scorer": {"name": scorer}, **method_kw}
    return {"run_id": f"{scorer}-{lr}-{seed}-{method_kw}", "experiment": experiment, "status": "ok", "seed": seed,
            "config": {"method": m, "model": {"name": "resnet8"}, "dataset": {"name": "fashion_mnist"},
                       "sparsity": {"target": 0.75}, "trainer": {"pretrain": {"epochs": 15}}, "stages": []},
            "metrics": {"val_acc": val, "test_acc": test, "test_acc_best": test, "acc_after_prune": 10.0,
                        "params_total": 25, "dense_params": 100, "macs_effective": 30, "dense_macs": 100}}


def test_agf_study_pairs_agf_with_the_strongest_scorer_on_validation(tmp_path):
    from flowprune.reports import study_agf

    store = ResultsStore(tmp_path)
    for lr, val in ((0.003, 80.0), (0.01, 86.0), (0.03, 84.0)):   # agf: 0.01 wins on val
        store.append(agf_record("agf", lr, 0, val, 90.0), study=True)
        store.append(agf_record("l1", lr, 0, val - 1.0, 89.0), study=True)      # l1: strongest other on val
        store.append(agf_record("random", lr, 0, val - 3.0, 95.0), study=True)  # best on test: never chosen
    for seed in (1, 2):
        store.append(agf_record("agf", 0.01, seed, 86.0, 90.0 + 0.3 * seed), study=True)
        store.append(agf_record("l1", 0.01, seed, 85.0, 89.0 + 0.1 * seed), study=True)
        store.append(agf_record("random", 0.01, seed, 83.0, 95.0), study=True)
    for seed in range(3):   # the dense + fine-tuning control, no LR grid
        store.append(agf_record("l1", None, seed, 90.0, 92.0, method="dense", finetune=True), study=True)
    df, spec = study_agf.study_runs(tmp_path, "a1_resnet8")
    final = study_agf.arms(df, spec)
    assert set(final.loc[final["scorer"] != "dense+ft", "lr"]) == {0.01}
    assert (final["scorer"] == "dense+ft").sum() == 3
    (row,) = study_agf.claims(tmp_path)
    diffs = np.array([90.0, 90.3, 90.6]) - np.array([89.0, 89.1, 89.2])
    assert "vs l1" in row["ours"] and row["delta"].startswith(f"{diffs.mean():+.2f}") and row["verdict"] == "holds"
    table = study_agf.paired_table(final)
    assert set(table["B"]) == {"l1", "random", "dense+ft"}
    assert table.loc[table["B"] == "dense+ft", "verdict (A > B)"].item() == "contradicted"


def s1_record(arm, target, lr, seed, val, test, kept=None, study="s1_resnet8"):
    method = {"name": arm, "lr": lr, "target_sparsity": target} if arm == "hyperflows_structured" else \
        {"name": "structured", "lr": lr, "target_sparsity": target, "scorer": {"name": arm}, "target_kind": "macs"}
    return {"run_id": f"{arm}-{target}-{lr}-{seed}", "experiment": f"study/{study}", "status": "ok", "seed": seed,
            "config": {"method": method, "model": {"name": "resnet8"}, "dataset": {"name": "fashion_mnist"},
                       "sparsity": {"target": target}, "trainer": {"pretrain": {"epochs": 15}}, "stages": []},
            "metrics": {"val_acc": val, "test_acc": test, "test_acc_best": test, "params_total": 40,
                        "dense_params": 100, "macs_effective": 100 * (1 - target) + seed, "dense_macs": 100,
                        "speedup_bs64": 1.6, "speedup_bs1": 1.2 + 0.1 * seed,
                        "kept_channels": kept or {"layer1.0.conv1": 8, "layer2.0.conv1": 16}}}


@pytest.mark.parametrize("study, key, lrs", [("s1_resnet8", "S1", (0.01, 0.03, 0.1)),
                                             ("s1_vit_micro", "S1-vit", (0.0001, 0.0003, 0.001))])
def test_s1_pairs_the_learned_flows_with_agf_at_the_lr_chosen_on_val(tmp_path, study, key, lrs):
    from flowprune.reports import claims, study_structured

    lo, mid, hi = lrs
    store = ResultsStore(tmp_path)
    for lr, val in ((lo, 80.0), (mid, 85.0), (hi, 84.0)):   # flows: mid wins on val; hi best on test
        store.append(s1_record("hyperflows_structured", 0.5, lr, 0, val, 95.0 if lr == hi else 90.0, study=study),
                     study=True)
        store.append(s1_record("agf", 0.5, lr, 0, val + (1 if lr == lo else -5), 89.0, study=study), study=True)
    for seed in (1, 2):
        store.append(s1_record("hyperflows_structured", 0.5, mid, seed, 85.0, 90.0 + 0.2 * seed, study=study),
                     study=True)
        store.append(s1_record("agf", 0.5, lo, seed, 81.0, 89.0 + 0.1 * seed, study=study), study=True)
    df, spec = study_structured.study_runs(tmp_path, study)
    final = study_structured.final_runs(df, spec, arm="arm")
    assert dict(zip(final["arm"], final["lr"])) == {"hyperflows_structured": mid, "agf": lo}
    table = study_structured.cell_table(final, df.iloc[0:0], key)
    assert list(table["arm"]) == ["hyperflows_structured", "agf"]
    assert list(table["max |kept - (1 - target)|"]) == ["0.020", "0.020"]
    assert table["speed-up bs64 (measured)"].iloc[0] == "1.60 ± 0.00"
    assert table["speed-up bs1 (measured)"].iloc[0] == "1.30 ± 0.10"   # seeds 0, 1, 2 at the chosen LR
    (row,) = study_structured.claims(tmp_path)
    diffs = np.array([90.0, 90.2, 90.4]) - np.array([89.0, 89.1, 89.2])
    assert row["id"] == f"{key} 50%" and row["delta"].startswith(f"{diffs.mean():+.2f}") and row["verdict"] == "holds"
    assert f"{key} 50%" in set(claims.build(tmp_path)["claim"])
    png = study_structured.kept_width_figure(final, tmp_path / "fig" / "kept", key)
    assert png.exists() and png.stat().st_size > 1000


def test_d1_compares_kernel_friendly_widths_with_free_ones_at_the_same_latency(tmp_path):
    """D1's arms are AGF with round_to=auto and round_to=1 (same scorer): the arm names tell them apart, the claim
    pairs them by seed, and the table's target column is the latency reduction."""
    from flowprune.reports import study_structured

    store = ResultsStore(tmp_path)
    for lr in (0.01, 0.03, 0.1):
        for round_to, val in (("auto", 90.0), (1, 89.0)):
            r = s1_record("agf", 0.5, lr, 0, val + (lr == 0.03), 91.0 if round_to == "auto" else 90.0)
            r["experiment"], r["run_id"] = "study/d1_resnet8", f"d1-{round_to}-{lr}-0"
            r["config"]["method"].update(round_to=round_to, target_kind="latency")
            store.append(r, study=True)
    for seed in (1, 2):
        for round_to in ("auto", 1):
            r = s1_record("agf", 0.5, 0.03, seed, 90.0, (91.0 if round_to == "auto" else 90.0) + 0.1 * seed)
            r["experiment"], r["run_id"] = "study/d1_resnet8", f"d1-{round_to}-{seed}"
            r["config"]["method"].update(round_to=round_to, target_kind="latency")
            store.append(r, study=True)
    df, spec = study_structured.study_runs(tmp_path, "d1_resnet8")
    assert set(df["arm"]) == {"agf round_to=auto", "agf"}
    final = study_structured.final_runs(df, spec, arm="arm")
    table = study_structured.cell_table(final, df.iloc[0:0], "D1")
    assert list(table["arm"]) == ["agf round_to=auto", "agf"] and "latency reduction (bs64)" in table
    (row,) = study_structured.claims(tmp_path)
    assert row["id"] == "D1 50%" and row["delta"].startswith("+1.00") and row["verdict"] == "holds"


def a4_record(target, seed, esc, cost, counts, n=1000):
    worse, same, better = counts
    return {"run_id": f"a4-{target}-{seed}", "experiment": "study/a4_resnet8", "status": "ok", "seed": seed,
            "config": {"method": {"name": "structured", "lr": 0.03, "target_sparsity": target,
                                  "scorer": {"name": "agf"}}, "model": {"name": "resnet8"},
                       "dataset": {"name": "fashion_mnist"}, "sparsity": {"target": target},
                       "trainer": {"pretrain": {"epochs": 15}}, "stages": []},
            "metrics": {"test_acc": 90.0, "routing_escalation_rate": esc, "routing_escalated": int(esc * n),
                        "routing_test_n": n, "routing_cost_cascade": cost, "routing_cost_mixture": cost - 0.1,
                        "routing_acc": 92.0 + (better - worse) / n * 100, "routing_full_acc": 92.0,
                        "routing_pruned_acc": 90.0, "routing_mac_ratio": 0.2, "routing_auroc": 0.8,
                        "routing_delta_counts": [worse, same, better]}}


def test_a4_verdict_needs_a_saving_and_full_accuracy(tmp_path):
    from experiments.stats import bootstrap_counts_interval
    from flowprune.reports import study_routing

    store = ResultsStore(tmp_path)
    for seed in range(3):
        store.append(a4_record(0.75, seed, 0.3, 0.5 + 0.01 * seed, (30, 965, 5)), study=True)   # cheap, -2.5 pt
        store.append(a4_record(0.96875, seed, 0.9, 0.95 + 0.1 * seed, (3, 994, 3)), study=True)  # cost ~1
    rows = {r["id"]: r for r in study_routing.claims(tmp_path)}
    # -2.5 points over 3000 images: the CI lies below the 0.1-point tolerance -> contradicted despite the saving
    mean, low, high = bootstrap_counts_interval([-100.0, 0.0, 100.0], [[30, 965, 5]] * 3)
    assert high < -0.1 and rows["A4 75.00%"]["verdict"] == "contradicted"
    assert f"{mean:+.2f}" in rows["A4 75.00%"]["ours"]
    assert rows["A4 96.88%"]["verdict"] == "inconclusive"          # cost 0.95/1.05/1.15: the saving's CI spans 0
    table = study_routing.table(study_routing.expert_rows(study_routing.study_runs(tmp_path, "a4_resnet8")[0]))
    assert list(table["escalation (95% CI)"])[0].startswith("+30.00%")


def test_routing_table_has_a_row_per_expert_method_at_the_same_target(tmp_path):
    """S1-route puts structured Hyperflows' expert beside AGF's at the same MAC reduction: one row each."""
    from flowprune.reports import study_routing

    store = ResultsStore(tmp_path)
    store.append(a4_record(0.7, 0, 0.3, 0.5, (3, 994, 3)), study=True)
    flows = a4_record(0.7, 0, 0.2, 0.4, (5, 990, 5))
    flows["run_id"], flows["config"]["method"] = "a4-flows", {"name": "hyperflows_structured", "lr": 0.03}
    store.append(flows, study=True)
    table = study_routing.table(study_routing.expert_rows(study_routing.study_runs(tmp_path, "a4_resnet8")[0]))
    assert sorted(zip(table["expert"], table["cost cascade"])) == [("agf", "0.500"),
                                                                   ("hyperflows_structured", "0.400")]


def a5_record(epochs, seed, p99, j_l1, chance, conf, sig):
    return {"run_id": f"a5-{epochs}-{seed}", "experiment": "study/a5_resnet8", "status": "ok", "seed": seed,
            "config": {"method": {"name": "structured", "lr": 0.03, "target_sparsity": 0.75,
                                  "scorer": {"name": "agf"}}, "model": {"name": "resnet8"},
                       "dataset": {"name": "fashion_mnist"}, "sparsity": {"target": 0.75},
                       "trainer": {"pretrain": {"epochs": epochs}}, "stages": []},
            "metrics": {"test_acc": 90.0, "dense_test_acc": 85.0 + epochs / 3, "signal_dense_p99_p1": p99,
                        "signal_dense_max_min": 10 * p99, "jaccard_agf_l1": j_l1, "jaccard_agf_act": 0.5,
                        "jaccard_random_expected": chance, "stability_jaccard_agf": 0.9,
                        "auroc_wrong_confidence": conf, "auroc_wrong_signal": sig, "auroc_wrong_act_l1": 0.6}}


def test_a5_claims_pair_early_and_converged_models_by_seed(tmp_path):
    from flowprune.reports import claims, study_selection

    store = ResultsStore(tmp_path)
    for seed in range(3):
        store.append(a5_record(1, seed, 100.0 * (1 + seed), 0.3, 0.14, 0.8, 0.6), study=True)
        store.append(a5_record(15, seed, 20.0 * (1 + 0.1 * seed), 0.05 + 0.01 * seed, 0.14, 0.85 + 0.01 * seed,
                               0.6), study=True)
    rows = {r["id"]: r for r in study_selection.claims(tmp_path)}
    early = np.log10([100.0, 200.0, 300.0])
    late = np.log10([20.0, 22.0, 24.0])
    assert rows["A5 compression"]["delta"].startswith(f"log10 ratio {np.mean(early - late):+.3f}")
    assert rows["A5 compression"]["verdict"] == "holds"
    assert rows["A5 decoupling"]["verdict"] == "holds"             # 0.05-0.07 vs chance 0.14, direction -1
    assert rows["A5 routing signal"]["verdict"] == "holds"
    assert {"A5 compression", "A5 decoupling", "A5 routing signal"} <= set(claims.build(tmp_path)["claim"])


def test_a3_pairs_agf_with_the_stronger_of_wanda_and_ria_and_t10_with_t100(tmp_path):
    """A3's arms carry their calibration length (``agf T=100``); per MLP width AGF is paired with whichever of
    Wanda and RIA is stronger on validation, and T = 10 with T = 100, each at its own LR chosen on val."""
    from flowprune.reports import study_agf

    def rec(scorer, lr, seed, val, test, target=0.5, batches=10):
        r = agf_record(scorer, lr, seed, val, test, experiment="study/a3_vit_micro", calibration={"batches": batches})
        r["config"]["method"]["target_sparsity"] = target
        r["config"]["sparsity"]["target"] = target
        r["config"]["model"]["name"] = "vit_micro"
        r["run_id"] += f"-{target}-{batches}"
        return r

    store = ResultsStore(tmp_path)
    for lr, val in ((0.0001, 70.0), (0.0003, 80.0), (0.001, 75.0)):   # 3e-4 wins on val for every arm
        store.append(rec("agf", lr, 0, val, 85.0), study=True)
        store.append(rec("wanda", lr, 0, val - 2, 84.0), study=True)
        store.append(rec("ria", lr, 0, val - 1, 99.0 if lr == 0.001 else 84.5), study=True)   # stronger on val
        store.append(rec("agf", lr, 0, val - 0.5, 84.0, batches=100), study=True)
    for seed in (1, 2):
        store.append(rec("agf", 0.0003, seed, 80.0, 85.0 + 0.2 * seed), study=True)
        store.append(rec("wanda", 0.0003, seed, 78.0, 84.0), study=True)
        store.append(rec("ria", 0.0003, seed, 79.0, 84.5 + 0.1 * seed), study=True)
        store.append(rec("agf", 0.0003, seed, 79.5, 84.0 + 0.1 * seed, batches=100), study=True)
    df, spec = study_agf.study_runs(tmp_path, "a3_vit_micro")
    assert study_agf.arm_labels(spec) == ["agf", "wanda", "ria", "agf T=100"]
    final = study_agf.arms(df, spec)
    assert set(final["scorer"]) == {"agf", "wanda", "ria", "agf T=100"} and set(final["lr"]) == {0.0003}
    rows = {r["id"]: r for r in study_agf.claims(tmp_path)}
    assert set(rows) == {"A3 50% width", "A3 T 50% width"}
    d = np.array([85.0, 85.2, 85.4]) - np.array([84.5, 84.6, 84.7])
    assert "vs ria" in rows["A3 50% width"]["ours"] and rows["A3 50% width"]["delta"].startswith(f"{d.mean():+.2f}")
    assert rows["A3 50% width"]["verdict"] == "holds" and "86.81" in rows["A3 50% width"]["paper"]
    d = np.array([85.0, 85.2, 85.4]) - np.array([84.0, 84.1, 84.2])
    assert rows["A3 T 50% width"]["delta"].startswith(f"{d.mean():+.2f}") and rows["A3 T 50% width"]["verdict"] == "holds"


def test_dense_convergence_table_checks_floor_plateau_and_curve_slopes(tmp_path):
    from flowprune.reports import study_dense

    store = ResultsStore(tmp_path)

    def dense(exp, model, epochs, seed, curve, seconds=60.0):
        store.append({"run_id": f"{exp}-{epochs}-{seed}", "experiment": exp, "status": "ok", "seed": seed,
                      "stage_seconds": {"pretrain": seconds},
                      "config": {"method": {"name": "dense"}, "model": {"name": model},
                                 "dataset": {"name": "fashion_mnist"}, "trainer": {"pretrain": {"epochs": epochs}},
                                 "stages": ["pretrain", "evaluate"]},
                      "metrics": {"test_acc": curve[-1], "dense_curve_test_acc": curve}}, study=True)

    for seed in (0, 1):   # lenet300: 8 epochs, +0.1 over the last quarter -> converged
        dense("study/h1_lenet300", "lenet300", 8, seed, [80, 84, 86, 88, 89, 89.5, 89.6, 89.7 + seed * 0.1])
        dense("study/h1_lenet300", "lenet300", 6, seed, [80, 84, 87, 88.5, 89.5, 89.6 + seed * 0.1])
    for seed in (0, 1):   # vit: above its floor, +1.0 over the last quarter -> not plateaued
        dense("study/a3_vit_micro", "vit_micro", 4, seed, [80, 84, 86, 87.0])
        dense("study/a3_vit_micro", "vit_micro", 3, seed, [80, 84, 86.0])
    dense("study/s1_vit_micro", "vit_micro", 4, 0, [70, 80, 82, 84.0], seconds=0.01)   # cached, below the floor
    table = study_dense.convergence_table(study_dense.dense_runs(tmp_path)).set_index("study")
    assert table.loc["h1_lenet300", "verdict"] == "converged"
    assert table.loc["h1_lenet300", "gain, last quarter (pairs)"] == "+0.10 (2)"
    # a quarter of 8 epochs is 2: first (86 - 80) / 2; last (89.7 or 89.8 - 89.5) / 2
    assert table.loc["h1_lenet300", "gain/epoch, 1st quarter"] == pytest.approx(3.0)
    assert table.loc["h1_lenet300", "gain/epoch, last quarter"] == pytest.approx(0.125)
    assert table.loc["a3_vit_micro", "verdict"] == "floor met, not plateaued"
    assert table.loc["a3_vit_micro", "gain, last quarter (pairs)"] == "+1.00 (2)"
    assert table.loc["s1_vit_micro", "verdict"] == "below floor"
    assert table.loc["s1_vit_micro", "pretrain min/seed"] == "cached"


def test_a_diverged_lr_counts_as_not_chosen_in_the_tables(tmp_path):
    store = ResultsStore(tmp_path)
    for lr, val in ((0.01, 80.0), (0.03, 85.0)):
        store.append(record("gmp", 0.9, lr, 0, val, 88.0), study=True)
    diverged = record("gmp", 0.9, 0.1, 0, None, None)
    diverged.update(status="failed", error="NonFiniteLoss: non-finite training loss in finetune epoch 1 step 3")
    store.append(diverged, study=True)
    other = record("gmp", 0.9, 0.01, 1, None, None)   # a failure of another kind is a missing run: not a row
    other.update(status="failed", error="RuntimeError: killed")
    store.append(other, study=True)
    df, spec = study_hyperflows.study_runs(tmp_path, "h1_lenet300")
    assert len(df) == 3 and df.loc[df["lr"] == 0.1, "val_acc"].item() == float("-inf")
    assert study_hyperflows.chosen_lrs(df, spec) == {("lenet300", 0.9, "gmp"): 0.03}
    assert list(study_hyperflows.final_runs(df, spec)["lr"]) == [0.03]


def test_the_study_report_on_an_empty_store_ends_in_one_error_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        study_hyperflows.main(["--results-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and f"no study records in {tmp_path / 'store'}" in err
    assert not (tmp_path / "tables").exists()


def test_h2_settling_table_tells_a_power_law_in_time_from_a_settled_density(tmp_path):
    """A curve D = 0.3·epoch^-0.5 never settles (β = 0.5 at every budget, last-quarter change 1 − (E/E_q)^-0.5);
    one that is flat over its last half has β = 0 and is settled. Percent curves (older records) read as fractions."""
    from flowprune.reports import study_h2

    store = ResultsStore(tmp_path)
    for epochs in (40, 120):
        e = np.arange(1, epochs + 1, dtype=float)
        for lam, curve in ((0.01, 0.3 * e ** -0.5), (8.0, np.r_[np.linspace(1, 0.02, epochs // 2), [0.02] * (epochs // 2)])):
            for seed in range(3):
                r = record("hyperflows", 0.9, None, seed, None, 80.0, experiment="study/h2_lenet300")
                r["run_id"] += f"-{lam}-{epochs}"
                r["config"]["method"]["pressure"] = {"fixed_lambda": lam}
                r["config"]["trainer"]["epochs"] = epochs
                hist = list(100 * curve) if epochs == 40 else list(curve)   # the older budget's records in percent
                r["metrics"].update(density=float(curve[-1]), hyperflows_history={"density": hist})
                store.append(r, study=True)
    table = study_h2.settling_table(study_h2.h2_runs(tmp_path, "study/h2_lenet300")).set_index(["epochs", "lambda"])
    for epochs in (40, 120):
        q = int(np.ceil(0.75 * epochs))                       # the 3/4 point, 1-based epoch
        expected = 1 - (epochs / q) ** -0.5
        assert table.loc[(epochs, 0.01), "settled"] == "no"
        assert table.loc[(epochs, 0.01), "beta (last half)"] == "0.500"
        assert table.loc[(epochs, 0.01), "last-quarter change %"].startswith(f"{100 * expected:.2f}")
        assert table.loc[(epochs, 8.0), "settled"] == "yes" and table.loc[(epochs, 8.0), "beta (last half)"] in ("0.000", "-0.000")
    study_h2.write_tables(tmp_path, tmp_path / "tables", tmp_path / "figures")
    assert (tmp_path / "tables" / "study_h2_settling.md").exists()
    assert (tmp_path / "figures" / "study_h2_density_in_time.png").exists()


def n1_record(target, pattern, lr, seed, val, test, sparsity=None):
    method = {"name": "magnitude", "lr": lr, "target_sparsity": target, "pattern": pattern}
    return {"run_id": f"n1-{target}-{pattern}-{lr}-{seed}", "experiment": "study/n1_lenet300", "status": "ok",
            "seed": seed, "config": {"method": method, "model": {"name": "lenet300"}, "dataset": {"name": "fashion_mnist"},
                                     "sparsity": {"target": target}, "trainer": {"pretrain": {"epochs": 40}},
                                     "stages": []},
            "metrics": {"val_acc": val, "test_acc": test, "test_acc_best": test,
                        "sparsity": target if sparsity is None else sparsity,
                        "acc_after_prune": test - (5.0 if pattern else 1.0), "dense_test_acc": 90.0 + seed}}


def test_n1_pairs_each_pattern_with_the_unstructured_mask_of_its_sparsity(tmp_path):
    """Each arm's LR is chosen on val; 2:4 is paired with unstructured at 50 %, 1:4 with unstructured at 75 %; the
    claim (the pattern costs accuracy, Δ < 0) and its interval match a t-interval computed with scipy."""
    from scipy import stats

    from flowprune.reports import claims, study_pattern

    store = ResultsStore(tmp_path)
    plain = {0: [89.0, 89.3, 89.1], 1: [88.0, 88.4, 88.1]}           # per target index, seeds 0..2
    nm = {0: [88.9, 89.3, 89.2], 1: [87.0, 87.1, 87.3]}
    for i, (target, pattern) in enumerate(((0.5, "2:4"), (0.75, "1:4"))):
        for lr in (0.003, 0.01, 0.03):   # unstructured: 0.01 wins on val, the pattern arm: 0.03
            store.append(n1_record(target, None, lr, 0, 85.0 + (lr == 0.01), plain[i][0] if lr == 0.01 else 80.0),
                         study=True)
            store.append(n1_record(target, pattern, lr, 0, 85.0 + (lr == 0.03), nm[i][0] if lr == 0.03 else 99.0),
                         study=True)
        for seed in (1, 2):
            store.append(n1_record(target, None, 0.01, seed, 86.0, plain[i][seed]), study=True)
            store.append(n1_record(target, pattern, 0.03, seed, 86.0, nm[i][seed]), study=True)
    df, spec = study_pattern.study_runs(tmp_path, "n1_lenet300")
    final = study_pattern.final_runs(df[df["arm"] != "dense"], spec, arm="arm")
    assert dict(zip(final["arm"], final["lr"])) == {"magnitude": 0.01, "magnitude 2:4": 0.03, "magnitude 1:4": 0.03}
    table = study_pattern.cell_table(final, df.iloc[0:0])
    assert list(table["arm"]) == ["magnitude", "magnitude 2:4", "magnitude", "magnitude 1:4"]
    rows = {r["id"]: r for r in study_pattern.claims(tmp_path)}
    assert set(rows) == {"N1 2:4", "N1 1:4"} and {"N1 2:4", "N1 1:4"} <= set(claims.build(tmp_path)["claim"])
    for i, key, verdict in ((0, "N1 2:4", "inconclusive"), (1, "N1 1:4", "holds")):
        d = np.array(nm[i]) - np.array(plain[i])
        half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
        assert rows[key]["delta"].startswith(f"{d.mean():+.2f} [{d.mean() - half:+.2f}, {d.mean() + half:+.2f}]")
        assert rows[key]["verdict"] == verdict


def test_n1_gives_no_verdict_where_the_pattern_arm_delivered_another_sparsity(tmp_path):
    """1:8 on LeNet-300 leaves the 300- and 100-input layers dense (0.773 instead of 0.875): not equal sparsity."""
    from flowprune.reports import study_pattern

    store = ResultsStore(tmp_path)
    for seed in (0, 1, 2):
        for lr in (0.003, 0.01, 0.03) if seed == 0 else (0.01,):
            store.append(n1_record(0.875, None, lr, seed, 85.0 + (lr == 0.01), 89.0 + 0.1 * seed), study=True)
            store.append(n1_record(0.875, "1:8", lr, seed, 85.0 + (lr == 0.01), 88.0, sparsity=0.7731), study=True)
    (row,) = study_pattern.claims(tmp_path)
    assert row["verdict"].startswith("no verdict: sparsity delivered 0.773 vs 0.875")
