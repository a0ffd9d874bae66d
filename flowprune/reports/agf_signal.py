"""Gradient signal compression (AGF paper §5): dynamic range of s(x) = Σ_u Σ_p |Y_u ∂L/∂Y_u| (predicted label)
over test inputs, 99th/1st percentile ratio and max/min, at an early vs a converged dense checkpoint (pretrain
epochs), and the AUROC of s(x), max-softmax confidence and activation ℓ1 for "the pruned model is wrong".

    flowprune report agf_signal [--results-dir results] [--experiment agf/signal_compression_proxy]
writes results/tables/agf_signal_compression.{md,csv,tex}
"""
from __future__ import annotations

from agf.reported import SIGNAL_COMPRESSION
from flowprune.reports.agf_common import log_wandb, mean_std, out_dir, parser, runs, write_table


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__, "agf/signal_compression_proxy")
    args = ap.parse_args(argv)
    df = runs(args.results_dir, args.experiment)
    cols = ["dense_test_acc", "signal_dense_p99_p1", "signal_dense_max_min", "signal_pruned_p99_p1",
            "auroc_wrong_confidence", "auroc_wrong_signal", "auroc_wrong_act_l1"]
    t = mean_std(df, ["pretrain_epochs"], cols)
    show = t[["pretrain_epochs", "n"] + [c for c in cols if c in t]]
    note = (f"{args.experiment}: s(x) over the test batches, predicted labels. Reported (statistic unknown): "
            f"{SIGNAL_COMPRESSION['early']}x early -> {SIGNAL_COMPRESSION['converged']}x converged. AUROC: higher "
            "= better at flagging inputs the pruned model gets wrong (score = -confidence, s(x), -act ℓ1).")
    print(write_table(show, "agf_signal_compression", out_dir(args, "tables"), note).read_text())
    log_wandb(args.wandb, "agf_signal", {"signal_compression": show}, {}, args.results_dir)


if __name__ == "__main__":
    main()
