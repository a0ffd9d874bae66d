"""75 % compression stress-test table (AGF paper §3.2 format): every scorer, mean ± std over seeds, accuracy
right after pruning and after fine-tuning (final and peak), the paper's ImageNet-1K numbers beside ours.

    flowprune report agf_stress [--results-dir results] [--experiment agf/stress75_proxy]
writes results/tables/agf_stress75[_proxy].{md,csv,tex}
"""
from __future__ import annotations

from agf.reported import STRESS75
from flowprune.reports.agf_common import log_wandb, mean_std, out_dir, paired_delta, parser, runs, write_table


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__, "agf/stress75_proxy")
    args = ap.parse_args(argv)
    df = runs(args.results_dir, args.experiment)
    cols = ["dense_test_acc", "acc_after_prune", "test_acc", "test_acc_best", "sparsity"]
    t = mean_std(df, ["scorer"], cols)
    # paired by seed (same dense model, same fine-tuning data order): scorer − reference, wins out of seeds
    refs = ("random", "l1")
    for ref in refs:
        t[f"Δ final vs {ref} (paired, wins)"] = t.scorer.map(paired_delta(df, df[df.scorer == ref], "test_acc", "scorer"))
    t["reported ImageNet top-1"] = t.scorer.map(STRESS75)
    t = t.sort_values("test_acc_mean", ascending=False)
    show = t[["scorer", "n", "acc_after_prune", "test_acc", "test_acc_best", *[f"Δ final vs {r} (paired, wins)" for r in refs],
              "reported ImageNet top-1"]].rename(columns={"acc_after_prune": "after prune", "test_acc": "final",
                                                          "test_acc_best": "peak"})
    dense = df["dense_test_acc"].mean()
    note = (f"{args.experiment}: {df.seed.nunique()} seeds, dense {dense:.2f} % (mean); sparsity "
            f"{df['sparsity'].mean():.3f} of conv/linear weights. 'reported' = paper's ImageNet-1K ResNet-50 "
            f"(baseline {STRESS75['baseline']} %), a different setting.")
    name = "agf_" + args.experiment.split("/")[-1]
    path = write_table(show, name, out_dir(args, "tables"), note)
    print(path.read_text())
    log_wandb(args.wandb, name, {name: show}, {}, args.results_dir)


if __name__ == "__main__":
    main()
