"""Hyperflows Table 1 from the results store, with the paper's reported numbers beside ours.

    flowprune report table1 [--results-dir results] [--experiment hyperflows/table1_proxy]
    -> <out>/tables/table1.{md,csv,tex}, <out>/figures/table1_<model>_<dataset>.{png,pdf} (--out: --results-dir)

Rows: dense (metrics.dense_test_acc, one value per seed) and each method, ours followed by the paper's
row(s) for that method marked "(reported)" (hyperflows/reported.py); paper-only baselines (GraSP, STR, SIS)
last. Columns: (model, dataset, target sparsity). Cells: final test accuracy mean ± std (n seeds)
[mean achieved sparsity]. The proxy grid (LeNets on Fashion-MNIST) has no reported numbers.
"""
from __future__ import annotations

import argparse
import sys

import pandas as pd

from flowprune.reports.common import (
    fmt_mean_std,
    log_wandb,
    matplotlib_agg,
    out_dir,
    pivot_cells,
    plot_mean_std,
    runs_or_exit,
    save_figure,
    spread,
    write_table,
)
from hyperflows.reported import reported_table1

EXPERIMENTS = ("hyperflows/table1", "hyperflows/table1_proxy")
METHOD_ORDER = ("dense", "hyperflows", "gmp", "rigl", "granet", "snip", "grasp", "synflow", "magnitude")
COLS = ["model", "dataset", "target"]
REPORTED = " (reported)"


def dense_rows(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The dense reference as pseudo-records: one per (model, dataset, seed) from metrics.dense_test_acc,
    repeated for every target of that (model, dataset) so it fills each column (sparsity 0)."""
    if "dense_test_acc" not in df:
        return pd.DataFrame(columns=["method", *COLS, metric, "sparsity"])
    per_seed = df.dropna(subset=["dense_test_acc"]).drop_duplicates(["model", "dataset", "seed"], keep="last")
    targets = df[COLS].drop_duplicates()
    out = per_seed[["model", "dataset", "seed", "dense_test_acc"]].merge(targets, on=["model", "dataset"])
    return out.rename(columns={"dense_test_acc": metric}).assign(method="dense", sparsity=0.0)


def ours(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Wide table of our rows: dense + every pruning method (method=dense records only feed the dense row)."""
    pruned = df[df["method"] != "dense"]
    long = pd.concat([dense_rows(df, metric), pruned[["method", *COLS, "seed", metric, "sparsity"]]],
                     ignore_index=True)
    return pivot_cells(long, ["method"], COLS, metric)


def reported(df: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 1 rows (long) at the (model, dataset, target) columns present in ``df``."""
    present = df[COLS].drop_duplicates().assign(target=lambda d: d["target"].astype(float).round(6))
    return reported_table1().merge(present, on=COLS)


def reported_wide(rep: pd.DataFrame) -> pd.DataFrame:
    """Wide table of the paper's rows, labelled "<row> (reported)", in the paper's order; extra column
    ``method_key`` (our method name) for ordering."""
    if rep.empty:
        return pd.DataFrame(columns=["method", "method_key"])
    rep = rep.assign(cell=[fmt_mean_std(m, s) for m, s in zip(rep["acc_mean"], rep["acc_std"])],
                     method=rep["method"] + REPORTED)
    keys = dict(zip(rep["method"], rep["method_key"]))
    wide = spread(rep, ["method"], COLS, "cell").set_index("method").loc[list(keys)].reset_index()
    return wide.assign(method_key=wide["method"].map(keys))


def merge_rows(our: pd.DataFrame, rep: pd.DataFrame) -> pd.DataFrame:
    """Methods in METHOD_ORDER (then any other of ours): our row, then the paper's row(s) for that method;
    the paper-only baselines (no method of ours) last. Columns are ours."""
    order = list(METHOD_ORDER) + [m for m in our["method"] if m not in METHOD_ORDER]
    pieces = [piece for m in order for piece in (our[our["method"] == m], rep[rep["method_key"] == m])]
    pieces.append(rep[~rep["method_key"].isin(order)])
    table = pd.concat(pieces, ignore_index=True)
    return table[list(our.columns)].fillna("")


def note(df: pd.DataFrame, experiments: list[str], metric: str, rep: pd.DataFrame) -> str:
    grids = sorted({f"{m}/{d}" for m, d in zip(df["model"], df["dataset"])})
    text = (f"Hyperflows Table 1 from experiment(s) {', '.join(f'`{e}`' for e in experiments)}: {metric} "
            f"(final test accuracy, %) mean ± std (n seeds) [s = mean achieved sparsity]; dense = the pre-trained "
            f"dense model (metrics.dense_test_acc). Grids: {', '.join(grids)}.")
    if rep.empty:
        return text + (" No reported numbers: the paper has no result for these (model, dataset) pairs "
                       "(the proxy grid is ours).")
    without = sorted(set(grids) - {f"{m}/{d}" for m, d in zip(rep["model"], rep["dataset"])})
    return text + (" Rows marked (reported) are the Hyperflows paper's Table 1 (arXiv 2504.05349; quoted "
                   "baselines have no std); names ending in '?' were lost in our copy and are reconstructed "
                   "(hyperflows/reported.py)." + (f" No reported numbers for {', '.join(without)}." if without else ""))


def figure(df: pd.DataFrame, model: str, dataset: str, metric: str):
    """Accuracy vs achieved sparsity, one line per method, dense as a horizontal line, reported as crosses."""
    plt = matplotlib_agg()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    sub = df[(df["model"] == model) & (df["dataset"] == dataset)]
    plot_mean_std(ax, sub[sub["method"] != "dense"], "sparsity", metric, "method", group="target")
    colors = {c.get_label(): c.lines[0].get_color() for c in ax.containers}
    dense = sub.drop_duplicates("seed", keep="last")["dense_test_acc"].dropna() if "dense_test_acc" in sub else []
    if len(dense):
        ax.axhline(float(pd.Series(dense).mean()), color="gray", ls="--", lw=1, label="dense")
    rep = reported_table1(dense=False)
    rep = rep[(rep["model"] == model) & (rep["dataset"] == dataset) & rep["method_key"].isin(colors)]
    for label, r in rep.groupby("method", sort=False):
        ax.plot(r["target"], r["acc_mean"], ls=":", marker="x", color=colors[r["method_key"].iloc[0]],
                label=label + REPORTED)
    ax.set(xlabel="achieved sparsity", ylabel=f"{metric} (%)", title=f"{model} / {dataset}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results-dir", default="results")
    ap.add_argument("--experiment", action="append", default=None,
                    help=f"experiment name, repeatable (default: {' and '.join(EXPERIMENTS)}, whichever exist)")
    ap.add_argument("--metric", default="test_acc", help="test_acc (final, default) or test_acc_best (peak)")
    ap.add_argument("--name", default="table1")
    ap.add_argument("--out", default=None, help="writes <out>/tables and <out>/figures (default: --results-dir)")
    ap.add_argument("--wandb", action="store_true", help="also log the table and figures to W&B (offline)")
    args = ap.parse_args(argv)

    experiments = args.experiment or list(EXPERIMENTS)
    df = runs_or_exit(args.results_dir, experiments, [*COLS, "method", "seed", args.metric, "sparsity"])
    found = [e for e in experiments if e in set(df["experiment"])]
    rep = reported(df)
    table = merge_rows(ours(df, args.metric), reported_wide(rep))
    path = write_table(table, args.name, out_dir(args, "tables"),
                       note(df, found, args.metric, rep))
    print(f"wrote {path} (+ .csv, .tex)")
    images = {}
    for model, dataset in df[["model", "dataset"]].drop_duplicates().itertuples(index=False):
        png, _ = save_figure(figure(df, model, dataset, args.metric), f"{args.name}_{model}_{dataset}",
                             out_dir(args, "figures"))
        images[f"{model}_{dataset}"] = png
        print(f"wrote {png} (+ .pdf)")
    log_wandb(args.wandb, args.name, {args.name: table}, images, args.results_dir, group="hyperflows-reports")
    return 0


if __name__ == "__main__":
    sys.exit(main())
