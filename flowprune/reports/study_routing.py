"""Routing studies: A4 (the converged full model and AGF experts of 3 sizes, with its claim rows) and S1-route
(ours: the structured-Hyperflows expert beside AGF's at the same MAC reduction, one seed, a table row each).

    flowprune report study   -> <out>/tables/study_a4_resnet8.{md,csv,tex}, study_s1_route_resnet8.*

Per expert size, over seeds: the escalation rate and both cost conventions at the operating point chosen on
validation (the cheapest τ within 0.1 points of the full model's validation accuracy), the routed and full test
accuracies, and the routed − full accuracy difference with a bootstrap CI over the test images of every seed
(each seed's images resampled within that seed, :func:`experiments.stats.bootstrap_counts_interval`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from experiments.stats import CONTRADICTED, HOLDS, INCONCLUSIVE, paired_delta
from experiments.stats import bootstrap_counts_interval
from experiments.study import StudySpec
from flowprune.reports.common import fmt_mean_std, write_table
from flowprune.reports.study import MIN_SEEDS, load_study, recorded
from routing.reported import IMAGENET100_ROUTING

STUDIES = {"A4": "a4_resnet8", "S1-route": "s1_route_resnet8"}
#: accuracy points within which routing "matches" the full model (the router's own tolerance)
TOLERANCE = 0.1
PAPER = next(r for r in IMAGENET100_ROUTING if r["method"].startswith("adaptive"))


def extra(r: dict) -> dict:
    """``expert``: how the expert was pruned (the scorer for one-shot channel removal, else the method)."""
    m, cfg = r.get("metrics") or {}, r.get("config") or {}
    method = cfg.get("method") or {}
    expert = (method.get("scorer") or {}).get("name") if method.get("name") == "structured" else method.get("name")
    return {"delta_counts": m.get("routing_delta_counts"), "target": (cfg.get("sparsity") or {}).get("target"),
            "expert": expert}


def study_runs(results_dir, study: str) -> tuple[pd.DataFrame, StudySpec]:
    spec = StudySpec.load(study)
    return load_study(results_dir, spec, extra, []), spec


def expert_rows(df: pd.DataFrame) -> list[dict]:
    """One dict per expert (how pruned, target) with every seed's numbers (rows without routing metrics skipped)."""
    df = df[df["routing_escalation_rate"].notna()] if "routing_escalation_rate" in df else df.iloc[0:0]
    out = []
    for (expert, target), g in sorted(df.groupby([df["expert"], df["target"].astype(float)])):
        g = g.sort_values("seed")
        counts = [list(c) for c in g["delta_counts"] if c is not None]
        acc = bootstrap_counts_interval([-100.0, 0.0, 100.0], counts) if counts else (np.nan,) * 3
        esc = (bootstrap_counts_interval([0.0, 1.0], [[int(n - e), int(e)] for e, n in
                                                      zip(g["routing_escalated"], g["routing_test_n"])])
               if g["routing_test_n"].notna().all() else (np.nan,) * 3)
        out.append({"expert": expert, "target": float(target), "seeds": len(g), "g": g, "acc_delta": acc,
                    "escalation": esc})
    return out


def table(rows: list[dict]) -> pd.DataFrame:
    out = []
    for r in rows:
        g = r["g"]
        out.append({"expert": r["expert"], "target": f"{r['target']:.2%}", "seeds": r["seeds"],
                    "expert MACs ÷ full": f"{g['routing_mac_ratio'].mean():.3f}",
                    "full acc": fmt_mean_std(g["routing_full_acc"].mean(), g["routing_full_acc"].std()),
                    "expert acc": fmt_mean_std(g["routing_pruned_acc"].mean(), g["routing_pruned_acc"].std()),
                    "routed acc": fmt_mean_std(g["routing_acc"].mean(), g["routing_acc"].std()),
                    "routed − full (95% CI over images)": ci_text(r["acc_delta"]),
                    "escalation (95% CI)": ci_text(tuple(100 * v for v in r["escalation"]), "%"),
                    "cost cascade": fmt_mean_std(g["routing_cost_cascade"].mean(), g["routing_cost_cascade"].std(), 3),
                    "cost mixture": fmt_mean_std(g["routing_cost_mixture"].mean(), g["routing_cost_mixture"].std(), 3),
                    "AUROC (confidence)": f"{g['routing_auroc'].mean():.3f}"})
    return pd.DataFrame(out)


def ci_text(ci: tuple, unit: str = "") -> str:
    mean, low, high = ci
    return "" if mean != mean else f"{mean:+.2f}{unit} [{low:+.2f}, {high:+.2f}]"


def a4_verdict(acc_delta: tuple, saving) -> str:
    """The paper's claim is full-model accuracy at a lower cost. *holds*: the cascade cost saving's CI over seeds is
    above 0 and the accuracy CI over images reaches −tolerance or above; *contradicted*: the saving's CI is below
    0, or the accuracy CI lies wholly below −tolerance; else *inconclusive*."""
    _, low, high = acc_delta
    if saving.high < 0 or high < -TOLERANCE:
        return CONTRADICTED
    if saving.low > 0 and high >= -TOLERANCE:
        return HOLDS
    return INCONCLUSIVE


def claims(results_dir) -> list[dict]:
    out = []
    for cid, study, df, spec in recorded(results_dir, {"A4": STUDIES["A4"]}, study_runs):
        for r in expert_rows(df):
            g = r["g"]
            if r["seeds"] < MIN_SEEDS:
                continue
            cost = g["routing_cost_cascade"].to_numpy(float)
            saving = paired_delta(np.ones_like(cost), cost)       # 1 − cascade cost, over seeds
            out.append({
                "id": f"{cid} {r['target']:.2%}",
                "paper": f"routing to a pruned expert keeps the full model's accuracy at lower cost (ImageNet-100: "
                         f"{PAPER['acc']} vs full 88.74, {100 * PAPER['escalation']:.1f} % escalated, "
                         f"{PAPER['cost']}× by the paper's mixture cost)",
                "setting": f"Fashion-MNIST ResNet-8 full model + AGF expert with {r['target']:.2%} of channels "
                           "removed; τ chosen on val (cheapest within 0.1 of full)",
                "ours": f"routed {g['routing_acc'].mean():.2f} vs full {g['routing_full_acc'].mean():.2f}, "
                        f"{100 * g['routing_escalation_rate'].mean():.1f} % escalated, cost cascade "
                        f"{g['routing_cost_cascade'].mean():.3f}× / mixture {g['routing_cost_mixture'].mean():.3f}×; "
                        f"routed − full {ci_text(r['acc_delta'])} (CI over images)",
                "delta": f"cascade saving {saving.text(3)}",
                "verdict": a4_verdict(r["acc_delta"], saving),
                "command": f"python -m experiments.study {study} && flowprune report claims"})
    return out


NOTES = {"A4": "AGF experts (5 fine-tune epochs at A2's LR; target = the fraction of channels removed)",
         "S1-route": "S1's experts at MAC reduction 0.7 (target = the MAC reduction; 10 epochs at S1's LR chosen "
                     "on val): structured Hyperflows beside AGF, one seed"}


def write_tables(results_dir, tables) -> None:
    for key, study, df, spec in recorded(results_dir, STUDIES, study_runs):
        rows = expert_rows(df)
        if rows:
            write_table(table(rows), f"study_{study}", tables,
                        f"Study {study} (`python -m experiments.study {study}`): confidence routing between A1's "
                        f"dense model and {NOTES[key]}, τ chosen on validation; mean ± std over seeds; costs relative "
                        "to the full model (cascade: the expert always runs; mixture: the paper's convention). "
                        "Routed − full: bootstrap over the test images of every seed.")
