"""Selection-stability analyses (AGF paper §5): Jaccard of top-k sets across disjoint calibration subsets
(per scorer) and between scorers, per-layer Spearman ρ between AGF, activation magnitude E|Y|, gradient
magnitude E|∂L/∂Y| and ‖W‖₁. Reads the ``unit_scores.pt`` files that ``method=structured`` runs point to.

    flowprune report agf_selection [--results-dir results] [--experiment agf/selection_proxy] [--keep 0.25]
writes results/tables/agf_selection_{stability,spearman}.{md,csv,tex}, results/figures/agf_selection_jaccard.{png,pdf}
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from agf.analysis import mean_over_units, spearman, topk_jaccard
from agf.reported import JACCARD_AGF_MAGNITUDE
from flowprune.reports.agf_common import log_wandb, out_dir, parser, reporting, runs, write_table

ORDER = ["agf", "taylor_signed", "taylor", "snip", "act", "grad", "wanda", "ria", "l1", "bn_scale", "random"]


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__, "agf/selection_proxy")
    ap.add_argument("--keep", type=float, default=0.25, help="kept fraction k for the top-k sets")
    args = ap.parse_args(argv)
    df = runs(args.results_dir, args.experiment)
    files = [f for f in df.get("scores_file", pd.Series(dtype=str)).dropna() if Path(f).exists()]
    if not files:
        reporting.fail(f"no unit_scores.pt files from {args.experiment!r} under {args.results_dir}")
    data = [torch.load(f, weights_only=True) for f in files]
    names = [n for n in ORDER if n in data[0]["scorers"]]

    # between scorers (same calibration), averaged over runs
    jac = np.zeros((len(names), len(names)))
    for d in data:
        for i, a in enumerate(names):
            for j, b in enumerate(names):
                jac[i, j] += mean_over_units(topk_jaccard, d["scorers"][a], d["scorers"][b], args.keep) / len(data)
    # stability across disjoint calibration subsets
    stab = []
    for n in names:
        vals = [mean_over_units(topk_jaccard, s1[n], s2[n], args.keep)
                for d in data for s1, s2 in itertools.combinations(d.get("splits", []), 2) if n in s1]
        if vals:
            stab.append({"scorer": n, "jaccard_across_subsets": float(np.mean(vals)),
                         "std": float(np.std(vals)), "pairs": len(vals)})
    # per-layer Spearman between AGF, |Y|, |dL/dY|, ||W||_1
    sig = {"agf": "agf", "act": "act", "grad": "grad", "l1": "l1"}
    rows = []
    for unit in data[0]["scorers"]["agf"]:
        row = {"layer": unit}
        for a, b in itertools.combinations(sig, 2):
            row[f"ρ({a},{b})"] = float(np.mean([spearman(d["scorers"][a][unit], d["scorers"][b][unit]) for d in data]))
        rows.append(row)
    rho = pd.DataFrame(rows)

    tables = out_dir(args, "tables")
    figures = out_dir(args, "figures")
    st = pd.DataFrame(stab)
    note = (f"{args.experiment}: {len(data)} runs, top-{args.keep:.0%} sets per layer. Jaccard(AGF, L1) = "
            f"{jac[names.index('agf'), names.index('l1')]:.3f} (reported ≈ {JACCARD_AGF_MAGNITUDE}, ImageNet).")
    print(write_table(st, "agf_selection_stability", tables, note).read_text())
    print(write_table(rho, "agf_selection_spearman", tables, f"{args.experiment}: per-layer Spearman ρ").read_text())
    jdf = pd.DataFrame(jac, index=names, columns=names).round(3).reset_index().rename(columns={"index": "scorer"})
    write_table(jdf, "agf_selection_jaccard", tables, note)

    plt = reporting.matplotlib_agg()
    fig, ax = plt.subplots(figsize=(7, 6))
    im = ax.imshow(jac, vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right")
    ax.set_yticks(range(len(names)), names)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{jac[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if jac[i, j] < 0.6 else "black")
    fig.colorbar(im, ax=ax, label=f"Jaccard of top-{args.keep:.0%} channel sets")
    ax.set_title(f"Selection overlap between scorers ({args.experiment})")
    png = reporting.save_figure(fig, "agf_selection_jaccard", figures)[0]
    print(f"figure: {png}")
    log_wandb(args.wandb, "agf_selection", {"stability": st, "spearman": rho, "jaccard": jdf},
              {"jaccard_heatmap": png}, args.results_dir)


if __name__ == "__main__":
    main()
