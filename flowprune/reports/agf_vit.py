"""ViT sparsity bottleneck (AGF paper §3.3): peak accuracy of AGF / Wanda / RIA at 50 % and 25 % MLP width,
and calibration T = 10 vs T = 100, with the paper's ViT-B numbers beside ours.

    flowprune report agf_vit [--results-dir results] [--experiment agf/vit_bottleneck_proxy]
writes results/tables/agf_vit_bottleneck.{md,csv,tex}
"""
from __future__ import annotations

from agf.reported import CALIBRATION_T, VIT_BOTTLENECK
from flowprune.reports.agf_common import (
    log_wandb,
    mean_std,
    out_dir,
    paired_delta,
    parser,
    runs,
    with_dense_rows,
    write_table,
)


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__, "agf/vit_bottleneck_proxy")
    args = ap.parse_args(argv)
    df = with_dense_rows(runs(args.results_dir, args.experiment))
    dense = df.scorer.str.startswith("dense")
    df["kept_mlp_fraction"] = df["target"].astype(float).rsub(1.0).where(~dense, 1.0)
    df["calib_T"] = df["calib_T"].where(~dense)                # no calibration in the dense rows
    by = ["scorer", "kept_mlp_fraction", "calib_T", "finetune_epochs"]
    t = mean_std(df, by, ["acc_after_prune", "test_acc_best", "test_acc"])
    t["reported peak (ViT-B)"] = [VIT_BOTTLENECK.get(("baseline" if s == "dense" else s, k)) if T != 100
                                  else CALIBRATION_T[100] for s, k, T in zip(t.scorer, t.kept_mlp_fraction, t.calib_T)]
    # paired by seed and width against Wanda at T = 10 (the paper's comparison)
    pruned = df[~dense]
    delta = paired_delta(pruned, pruned[(pruned.scorer == "wanda") & (pruned.calib_T == 10)], "test_acc_best", by,
                         match=["seed", "kept_mlp_fraction"])
    t["Δ peak vs wanda (paired, wins)"] = [delta.get(k) for k in t[by].itertuples(index=False, name=None)]
    show = t[[*by, "n", "acc_after_prune", "test_acc_best", "test_acc", "Δ peak vs wanda (paired, wins)",
              "reported peak (ViT-B)"]].rename(
        columns={"test_acc_best": "peak", "test_acc": "final"})
    note = (f"{args.experiment}: peak = best test accuracy over fine-tuning; dense = the unpruned model, dense+ft = "
            "it + the same fine-tuning; reported = the paper's ViT-B (T = 100 row: its T = 10 vs 100 comparison).")
    print(write_table(show, "agf_vit_bottleneck", out_dir(args, "tables"), note).read_text())
    log_wandb(args.wandb, "agf_vit_bottleneck", {"vit_bottleneck": show}, {}, args.results_dir)


if __name__ == "__main__":
    main()
