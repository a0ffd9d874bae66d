"""Routing tables and Pareto figures from the results store (AGF paper §3.4 format).

Reads every ok record with routing metrics (and the per-run CSVs they point to) and writes
  results/tables/routing_summary.{md,csv,tex}   paper format: static full / static pruned / random / adaptive,
                                            both cost conventions, the paper's reported rows beside ours
  results/tables/routing_sizes.{md,csv,tex}   one row per run (expert size): MAC ratio, escalation, costs,
                                            wall-clock ratio; the cheapest cascade that matches the full model
  results/figures/routing_pareto.{png,pdf}          accuracy vs relative cost, every run, both conventions
  results/figures/routing_pareto_signals.{png,pdf}  policies compared on one run (cascade cost)

    flowprune report routing [--results-dir results] [--experiment agf/routing]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from experiments.results import ResultsStore
from flowprune.reports import common as reporting
from routing.reported import reported_rows


def routing_runs(results_dir: str, experiment: str) -> list[dict]:
    runs = [r for r in ResultsStore(results_dir).records()
            if r.get("status") == "ok" and (r.get("metrics") or {}).get("routing_curve_csv")
            and str(r.get("experiment", "")).startswith(experiment)]
    return [r for r in runs if Path(r["metrics"]["routing_curve_csv"]).exists()]


def expert_label(r: dict) -> str:
    cfg, m = r.get("config") or {}, r["metrics"]
    method = cfg.get("method") or {}
    target = (cfg.get("sparsity") or {}).get("target")
    return f"{cfg.get('model', {}).get('name')} {method.get('name')} sparsity {target} ({m['routing_mac_ratio']:.2f}x MACs)"


def sizes_table(runs: list[dict]) -> pd.DataFrame:
    """One row per run. ``*_valtau`` columns: test numbers at the τ chosen on validation (the honest operating point);
    ``*_testmatch``: the cheapest τ whose *test* accuracy is within the tolerance of the full model (an
    optimistic reference, the point the issue asks about). ``cheapest_cascade`` marks, per experiment and
    pruning method, the expert size with the lowest test-matched cascade cost."""
    rows = []
    for r in runs:
        m, cfg = r["metrics"], r.get("config") or {}
        rows.append({"run_id": r["run_id"], "experiment": r["experiment"],
                     "method": (cfg.get("method") or {}).get("name"), "expert": expert_label(r),
                     "policy": m["routing_policy"], "full_acc": m["routing_full_acc"],
                     "pruned_acc": m["routing_pruned_acc"], "mac_ratio": m["routing_mac_ratio"],
                     "break_even_escalation": m["routing_break_even_rate"],
                     "escalation_valtau": m["routing_escalation_rate"], "acc_valtau": m["routing_acc"],
                     "cost_mixture_valtau": m["routing_cost_mixture"], "cost_cascade_valtau": m["routing_cost_cascade"],
                     "escalation_testmatch": m.get("routing_testmatch_escalation_rate"),
                     "cost_mixture_testmatch": m.get("routing_testmatch_cost_mixture"),
                     "cost_cascade_testmatch": m.get("routing_testmatch_cost_cascade"),
                     "wallclock_ratio": m.get("routing_wallclock_ratio"), "auroc": m.get("routing_auroc")})
    df = pd.DataFrame(rows)
    if len(df):
        df["cheapest_cascade"] = False
        for _, g in df.groupby(["experiment", "method"], dropna=False):
            costs = pd.to_numeric(g["cost_cascade_testmatch"], errors="coerce")
            if costs.notna().any():
                df.loc[costs.idxmin(), "cheapest_cascade"] = True
    return df


def summary_table(runs: list[dict]) -> pd.DataFrame:
    parts = []
    for r in runs:
        s = pd.read_csv(r["metrics"]["routing_summary_csv"])
        s.insert(0, "source", f"ours: {expert_label(r)}")
        parts.append(s)
    paper = pd.DataFrame(reported_rows()).drop(columns=["cost"])
    paper.insert(0, "source", "paper (ImageNet-100, ResNet-50, reported)")
    out = pd.concat(parts + [paper], ignore_index=True)
    out["escalation"] = out["escalation"].map(lambda p: f"{100 * p:.1f} : {100 * (1 - p):.1f}")
    return out.rename(columns={"escalation": "routing ratio (full : small)"})


def plot_runs(runs: list[dict], path: Path) -> None:
    plt = reporting.matplotlib_agg()
    fig, ax = plt.subplots(figsize=(7, 4.6))
    for i, r in enumerate(runs):
        m = r["metrics"]
        c = pd.read_csv(m["routing_curve_csv"])
        c = c[c.policy == m["routing_policy"]]
        color = f"C{i % 10}"
        ax.plot(c.cost_cascade, c.acc_test, "-", color=color, label=f"{expert_label(r)}: cascade")
        ax.plot(c.cost_mixture, c.acc_test, ":", color=color, label="  mixture (paper convention)")
        ax.plot([m["routing_mac_ratio"]], [m["routing_pruned_acc"]], "^", color=color)
        ax.plot([m["routing_cost_cascade"]], [m["routing_acc"]], "*", ms=12, color=color, mec="k")
        ax.plot([m["routing_mac_ratio"], 1.0], [m["routing_pruned_acc"], m["routing_full_acc"]], "--", color=color,
                lw=0.6, alpha=0.6)
    if runs:
        ax.plot([1.0], [runs[0]["metrics"]["routing_full_acc"]], "s", color="k", label="static full")
    ax.set_xlabel("relative cost (MACs / full model)")
    ax.set_ylabel("test top-1 accuracy (%)")
    ax.set_title("pruned → full routing (★ τ chosen on validation; dashed: random, mixture)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6.5, loc="lower right")
    reporting.save_figure(fig, path.name, path.parent)


def plot_signals(run: dict, path: Path) -> None:
    plt = reporting.matplotlib_agg()
    m = run["metrics"]
    c = pd.read_csv(m["routing_curve_csv"])
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for i, (name, g) in enumerate(c.groupby("policy", sort=False)):
        auc = g.auroc_test.iloc[0]
        ax.plot(g.cost_cascade, g.acc_test, "-", color=f"C{i}", label=f"{name} (AUROC {auc:.3f})")
    ax.plot([1.0], [m["routing_full_acc"]], "s", color="k", label="static full")
    ax.plot([m["routing_mac_ratio"]], [m["routing_pruned_acc"]], "^", color="k", label="static pruned")
    ax.set_xlabel("relative cascade cost (C_pruned + p·C_full) / C_full")
    ax.set_ylabel("test top-1 accuracy (%)")
    ax.set_title(f"routing signals: {expert_label(run)}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    reporting.save_figure(fig, path.name, path.parent)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results-dir", default="results")
    ap.add_argument("--experiment", default="agf/routing", help="record experiment prefix")
    ap.add_argument("--out", default=None, help="writes <out>/tables and <out>/figures (default: --results-dir)")
    args = ap.parse_args(argv)
    runs = routing_runs(args.results_dir, args.experiment)
    if not runs:
        reporting.fail(f"no ok routing runs with experiment '{args.experiment}*' under {args.results_dir}/runs; "
                       "run it first or pass --results-dir/--experiment")
    tables, figures = reporting.out_dir(args, "tables"), reporting.out_dir(args, "figures")
    tables.mkdir(parents=True, exist_ok=True)
    figures.mkdir(parents=True, exist_ok=True)
    sizes = sizes_table(runs)
    reporting.write_table(sizes, "routing_sizes", tables)
    reporting.write_table(summary_table(runs), "routing_summary", tables)
    plot_runs(runs, figures / "routing_pareto")
    plot_signals(runs[-1], figures / "routing_pareto_signals")
    print(sizes[["expert", "full_acc", "escalation_valtau", "acc_valtau", "cost_cascade_valtau", "escalation_testmatch",
                 "cost_mixture_testmatch", "cost_cascade_testmatch", "wallclock_ratio", "cheapest_cascade"]]
          .to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
