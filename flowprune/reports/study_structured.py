"""Studies of ours on physically narrower networks, arms compared at one cost target:

- S1: structured Hyperflows (learned channel flows) vs one-shot channel scorers at equal MACs (ResNet-8 channels;
  S1-vit: vit_micro's MLP neurons);
- D1: AGF with a measured-latency target, kernel-friendly widths (``round_to=auto``: the CPU conv kernels' channel
  block) vs free widths (``round_to=1``).

    flowprune report study   -> <out>/tables/study_<study>.*, study_<study>_paired.*,
                                <out>/figures/study_<study>_kept_width.{png,pdf}   (s1_resnet8, s1_vit_micro, d1_resnet8)

Same protocol as :mod:`flowprune.reports.study`: each (target, arm) cell's LR is chosen on validation at the
selection seed; the headline is the final-epoch test accuracy at that LR over every seed; comparisons are paired by
seed. The target is a MAC (S1) or measured-latency (D1) reduction; the table shows the MAC fraction each arm really
kept, and the measured
latency speed-up over the dense model in the same run at batches 1 and 64 (each model in its fastest faithful form,
``metrics.speedup_bs*``).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from flowprune.reports.common import fmt_mean_std, save_figure, write_table
from flowprune.reports.study import final_runs, load_study, paired_cells, protocol_note, recorded

STUDIES = {"S1": "s1_resnet8", "S1-vit": "s1_vit_micro", "D1": "d1_resnet8"}
#: per study: the arm its claim is about, the arm it is compared with in the claim, and what the target reduces
OURS = {"S1": ("hyperflows_structured", "agf", "MAC reduction"),
        "S1-vit": ("hyperflows_structured", "agf", "MAC reduction"),
        "D1": ("agf round_to=auto", "agf", "latency reduction (bs64)")}
ARM = "arm"


def extra(r: dict) -> dict:
    """``arm``: the method for structured Hyperflows and dense, the scorer for one-shot channel removal (with its
    ``round_to`` where widths are rounded)."""
    cfg = r.get("config") or {}
    method = cfg.get("method") or {}
    name = method.get("name")
    arm = (method.get("scorer") or {}).get("name") if name == "structured" else name
    round_to = str(method.get("round_to") or 1)
    if name == "structured" and round_to != "1":
        arm = f"{arm} round_to={round_to}"
    m = r.get("metrics") or {}
    return {ARM: arm, "lr": method.get("lr"), "kept_channels": m.get("kept_channels"),
            "pretrain_epochs": ((cfg.get("trainer") or {}).get("pretrain") or {}).get("epochs")}


def study_runs(results_dir, study: str):
    from experiments.study import StudySpec

    spec = StudySpec.load(study)
    return load_study(results_dir, spec, extra, ["lr", ARM]), spec


def _speedup(g: pd.DataFrame, batch: int) -> str:
    key = f"speedup_bs{batch}"
    if key not in g or g[key].isna().all():
        return ""
    return fmt_mean_std(g[key].mean(), g[key].std())


def cell_table(final: pd.DataFrame, dense: pd.DataFrame, key: str = "S1") -> pd.DataFrame:
    ours, _, target_label = OURS[key]
    rows = []
    for (target, arm), g in sorted(final.groupby(["target", ARM]),
                                   key=lambda kv: (float(kv[0][0]), kv[0][1] != ours, -kv[1]["test_acc"].mean())):
        kept = g["macs_effective"] / g["dense_macs"]
        off = (f"{(kept - (1 - float(target))).abs().max():.3f}" if target_label == "MAC reduction" else "")
        rows.append({target_label: f"{float(target):.0%}", "arm": arm, "lr": g["chosen_lr"].iloc[0],
                     "seeds": len(g), "test_acc (final)": fmt_mean_std(g["test_acc"].mean(), g["test_acc"].std()),
                     "MACs kept": f"{kept.mean():.3f}", "max |kept - (1 - target)|": off,
                     "params kept": f"{(g['params_total'] / g['dense_params']).mean():.3f}",
                     "speed-up bs1 (measured)": _speedup(g, 1), "speed-up bs64 (measured)": _speedup(g, 64),
                     "test_acc_best (peak, secondary)": fmt_mean_std(g["test_acc_best"].mean(), g["test_acc_best"].std())})
    if not dense.empty:
        rows.append({target_label: "0%", "arm": "dense", "lr": None, "seeds": len(dense),
                     "test_acc (final)": fmt_mean_std(dense["test_acc"].mean(), dense["test_acc"].std()),
                     "MACs kept": "1.000", "max |kept - (1 - target)|": "", "params kept": "1.000",
                     "speed-up bs1 (measured)": "", "speed-up bs64 (measured)": "", "test_acc_best (peak, secondary)": ""})
    return pd.DataFrame(rows)


def paired(final: pd.DataFrame, target: float, a: str, b: str) -> dict | None:
    sub = final[final["target"].astype(float).round(6) == round(target, 6)]
    return paired_cells(sub[sub[ARM] == a], sub[sub[ARM] == b])


def paired_table(final: pd.DataFrame, key: str = "S1") -> pd.DataFrame:
    ours, _, target_label = OURS[key]
    rows = []
    for target in sorted(final["target"].astype(float).unique()):
        for b in sorted(set(final.loc[final["target"].astype(float) == target, ARM]) - {ours}):
            p = paired(final, target, ours, b)
            if p is not None:
                rows.append({target_label: f"{target:.0%}", "A": ours, "B": b, "seeds": p["seeds"],
                             "A − B (95% CI, wins)": p["delta"].text(), "verdict (A > B)": p["verdict"]})
    return pd.DataFrame(rows)


def kept_width_figure(final: pd.DataFrame, path: Path, key: str = "S1") -> Path | None:
    """Kept channels per unit (mean over seeds): the claim's arm beside the one it is compared with (S1: the learned
    flows' choice beside AGF's at the same MAC budget)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ours, other, target_label = OURS[key]
    sub = final[final[ARM].isin([ours, other]) & final["kept_channels"].notna()]
    targets = sorted(sub["target"].astype(float).unique())
    if not targets:
        return None
    fig, axes = plt.subplots(1, len(targets), figsize=(5 * len(targets), 3.4), squeeze=False)
    for ax, target in zip(axes[0], targets):
        g = sub[sub["target"].astype(float) == target]
        for i, (arm, h) in enumerate(sorted(g.groupby(ARM), key=lambda kv: kv[0] != ours)):
            widths = pd.DataFrame(list(h["kept_channels"])).mean()
            xs = [k + (i - 0.5) * 0.4 for k in range(len(widths))]
            ax.bar(xs, widths.values, width=0.4, label=arm)
            ax.set_xticks(range(len(widths)), widths.index, rotation=30, fontsize=7)
        ax.set_title(f"{target_label} {target:.0%}")
        ax.set_ylabel("kept channels (mean over seeds)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path.name, path.parent)[0]


def write_tables(results_dir, tables: Path, figures: Path) -> None:
    for key, study, df, spec in recorded(results_dir, STUDIES, study_runs):
        final = final_runs(df[df[ARM] != "dense"], spec, arm=ARM)
        write_table(cell_table(final, df[df[ARM] == "dense"], key), f"study_{study}", tables,
                    protocol_note(study, spec))
        write_table(paired_table(final, key), f"study_{study}_paired", tables,
                    "Paired by seed (same dense checkpoint): mean difference of final test accuracy, 95 % t-interval, "
                    "pairs won by A.")
        kept_width_figure(final, figures / f"study_{study}_kept_width", key)


CLAIMS = {
    "S1": ("ours (no paper): learned channel flows (structured Hyperflows) >= AGF's one-shot choice at equal MACs",
           "Fashion-MNIST ResNet-8, MAC reduction {target:.0%}, 10 ep. from dense, LR on val", "flows", "AGF"),
    "S1-vit": ("ours (no paper): learned MLP-neuron flows (structured Hyperflows) >= AGF's one-shot choice at equal "
               "MACs", "Fashion-MNIST vit_micro, MLP neurons, MAC reduction {target:.0%}, 5 ep. AdamW from dense, LR "
               "on val", "flows", "AGF"),
    "D1": ("ours (no paper): at equal measured latency, widths rounded to the CPU kernels' channel block (16 with "
           "AVX-512, 8 with AVX2) keep more accuracy than free widths", "Fashion-MNIST ResNet-8, AGF, measured batch-64 latency reduced by "
           "{target:.0%}, 5 ep. from dense, LR on val", "round_to=auto", "round_to=1"),
}


def claims(results_dir) -> list[dict]:
    """S1: learned channel flows reach at least AGF's accuracy at the same MAC reduction; D1: kernel-friendly widths
    beat free ones at the same measured latency."""
    out = []
    for key, study, df, spec in recorded(results_dir, STUDIES, study_runs):
        ours, other, _ = OURS[key]
        paper, setting, a, b = CLAIMS[key]
        final = final_runs(df[df[ARM] != "dense"], spec, arm=ARM)
        for target in sorted(final["target"].astype(float).unique()):
            p = paired(final, target, ours, other)
            if p is not None:
                out.append({"id": f"{key} {target:.0%}", "paper": paper, "setting": setting.format(target=target),
                            "ours": f"{a} {p['a_mean']:.2f} vs {b} {p['b_mean']:.2f}",
                            "delta": p["delta"].text(), "verdict": p["verdict"],
                            "command": f"python -m experiments.study {study} && flowprune report claims"})
    return out
