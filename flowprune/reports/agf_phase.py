"""Topological phase transition (AGF paper §3.1): accuracy vs kept width for AGF / RIA / random with inherited
weights, the same pruned architectures trained from scratch, and the dense model + the same extra fine-tuning.

    flowprune report agf_phase [--results-dir results] [--experiment agf/phase_transition_proxy]
writes results/tables/agf_phase_transition.{md,csv,tex}, results/figures/agf_phase_transition.{png,pdf}
"""
from __future__ import annotations

from agf.reported import PHASE_TRANSITION
from flowprune.reports.agf_common import (
    log_wandb,
    mean_std,
    out_dir,
    parser,
    reporting,
    runs,
    with_dense_rows,
    write_table,
)


def reported(scorer: str, kept_fraction: float) -> float | None:
    """The paper's mean at the same kept fraction of 1024 channels (WRN-18-2 / CIFAR-100), if it reports one."""
    key = "scratch" if "scratch" in scorer else "baseline" if scorer == "dense" else scorer
    return PHASE_TRANSITION.get((key, round(kept_fraction * 1024)), (None,))[0]


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__, "agf/phase_transition_proxy")
    args = ap.parse_args(argv)
    df = runs(args.results_dir, args.experiment)
    df = with_dense_rows(df)
    df["kept_fraction"] = [1.0 if s.startswith("dense") else 1.0 - float(x) for s, x in zip(df.scorer, df.target)]
    # training the model gets once its architecture is fixed: fine-tuning, or the whole budget from scratch
    df["epochs_after_prune"] = df.pretrain_epochs.where(df.from_scratch, df.finetune_epochs)
    df.loc[df.from_scratch, "acc_after_prune"] = float("nan")   # re-initialised: the pruned weights are not used
    by = ["scorer", "epochs_after_prune", "kept_fraction"]
    t = mean_std(df, by, ["test_acc_best", "test_acc", "acc_after_prune"])
    t["reported (k of 1024)"] = [reported(s, k) for s, k in zip(t.scorer, t.kept_fraction)]
    t = t.sort_values(by)
    show = t[[*by, "n", "acc_after_prune", "test_acc", "test_acc_best", "reported (k of 1024)"]]
    note = (f"{args.experiment}: peak = best test accuracy over fine-tuning; dense {df.dense_test_acc.mean():.2f} %; "
            "epochs_after_prune = fine-tuning epochs (pruned, dense+ft) or the whole training budget (scratch). "
            "Reported = WRN-18-2 / CIFAR-100 (k of 1024 = kept fraction x 1024).")
    print(write_table(show, "agf_phase_transition", out_dir(args, "tables"), note).read_text())

    plt = reporting.matplotlib_agg()
    fig, ax = plt.subplots(figsize=(6, 4))
    # colour = scorer, line style = training after pruning (solid: the longest budget), grey lines = dense
    colors = {s: f"C{i}" for i, s in enumerate(x for x in t.scorer.unique() if not x.startswith("dense"))}
    longest = t.epochs_after_prune.max()
    for (s, e), g in t.groupby(["scorer", "epochs_after_prune"]):
        label = f"{s} ({e:g} ep)"
        if s.startswith("dense"):
            ax.axhline(g.test_acc_best_mean.iloc[0], ls="-" if s == "dense" else "--" if e < longest else ":",
                       color="gray", lw=1, label=label)
            continue
        ax.errorbar(g.kept_fraction, g.test_acc_best_mean, yerr=g.test_acc_best_std.fillna(0), marker="o",
                    capsize=3, label=label, color=colors[s], ls="-" if e == longest else "--")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("kept width fraction of every pruned layer")
    ax.set_ylabel("peak test accuracy (%)")
    ax.set_title(args.experiment)
    ax.legend(fontsize=7, ncol=2)
    png = reporting.save_figure(fig, "agf_phase_transition", out_dir(args, "figures"))[0]
    print(f"figure: {png}")
    log_wandb(args.wandb, "agf_phase_transition", {"phase_transition": show}, {"phase_transition": png},
              args.results_dir)


if __name__ == "__main__":
    main()
