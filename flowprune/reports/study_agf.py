"""AGF study tables (A1 75 % channel stress test, A2 phase transition, A3 ViT MLP bottleneck) and their claims.

    flowprune report study   -> <out>/tables/study_a1_resnet8.*, study_a1_resnet8_paired.*, (A2, A3 likewise)

Same protocol as :mod:`flowprune.reports.study`: each (model, target, scorer) cell's fine-tuning LR is the one
with the best final-epoch validation accuracy at the selection seed; the headline is the final-epoch test accuracy
over every seed at that LR; comparisons are paired by seed (same dense checkpoint, same data order). Controls
(dense + the same fine-tuning epochs, the pruned architecture trained from scratch) run at their recipe's LR.
"""
from __future__ import annotations

import pandas as pd

from agf.reported import CALIBRATION_T, PHASE_TRANSITION, STRESS75, VIT_BOTTLENECK
from experiments.study import StudySpec
from flowprune.reports.agf_common import AGF_KEY, agf_columns
from flowprune.reports.common import fmt_mean_std, write_table
from flowprune.reports.study import final_runs, load_study, paired_cells, protocol_note, recorded

STUDIES = {"A1": "a1_resnet8", "A2": "a2_resnet8", "A3": "a3_vit_micro"}
CONTROLS = ("dense+ft", "agf (scratch)", "scratch")
#: the calibration length of every A-study arm unless the arm sets another (then its label says ``T=<n>``)
DEFAULT_T = 10


def extra(r: dict) -> dict:
    cols = agf_columns(r)
    t = cols["calib_T"]
    if t not in (None, DEFAULT_T) and cols["scorer"] not in ("dense", "dense+ft"):
        cols["scorer"] = f"{cols['scorer']} T={t}"
    return {**cols, "lr": ((r.get("config") or {}).get("method") or {}).get("lr")}


def arm_labels(spec: StudySpec) -> list[str]:
    """The scorer labels a study compares: its ``scorer`` grid, or one label per ``arm`` (``scorer=x`` plus
    ``method.calibration.batches=n`` -> ``x T=n``)."""
    if "scorer" in spec.grid:
        return list(spec.grid["scorer"])
    labels = []
    for arm in spec.grid.get("arm", []):
        kv = dict(o.split("=", 1) for o in arm)
        t = int(kv.get("method.calibration.batches", DEFAULT_T))
        labels.append(kv.get("scorer", "?") + (f" T={t}" if t != DEFAULT_T else ""))
    return labels


def study_runs(results_dir, study: str) -> tuple[pd.DataFrame, StudySpec]:
    spec = StudySpec.load(study)
    return load_study(results_dir, spec, extra, ["lr", *AGF_KEY]), spec


def arms(df: pd.DataFrame, spec: StudySpec) -> pd.DataFrame:
    """Every pruned run that counts: the scorers at their chosen LR, and the controls (dense + fine-tuning gets
    the target of each pruned cell so it can be paired with it; scratch keeps its own)."""
    scored = final_runs(df[df["scorer"].isin(arm_labels(spec))], spec, arm="scorer")
    controls = df[df["scorer"].isin(CONTROLS)].assign(chosen_lr=lambda d: d["lr"])
    ft = controls[controls["scorer"] == "dense+ft"]
    targets = sorted(scored["target"].dropna().astype(float).unique())
    ft = pd.concat([ft.assign(target=t) for t in targets], ignore_index=True) if targets else ft
    return pd.concat([scored, controls[controls["scorer"] != "dense+ft"], ft], ignore_index=True)


def removed_label(final: pd.DataFrame) -> str:
    """What a table's target counts: a ViT's MLP neurons, else a CNN's channels."""
    model = str(final["model"].iloc[0]) if "model" in final and len(final) else ""
    return "MLP neurons removed" if model.startswith("vit") else "channels removed"


def cell_table(final: pd.DataFrame, dense: pd.DataFrame) -> pd.DataFrame:
    rows = []
    removed = removed_label(final)
    order = {"dense+ft": 2, "agf (scratch)": 1, "scratch": 1}
    for (target, scorer), g in sorted(final.groupby(["target", "scorer"]),
                                      key=lambda kv: (kv[0][0], order.get(kv[0][1], 0), -kv[1]["test_acc"].mean())):
        rows.append({removed: f"{float(target):.2%}", "arm": scorer,
                     "lr": g["chosen_lr"].iloc[0], "seeds": len(g),
                     "after prune": fmt_mean_std(g["acc_after_prune"].mean(), g["acc_after_prune"].std())
                     if "acc_after_prune" in g else "",
                     "test_acc (final)": fmt_mean_std(g["test_acc"].mean(), g["test_acc"].std()),
                     "params kept": f"{(g['params_total'] / g['dense_params']).mean():.3f}",
                     "MACs kept": f"{(g['macs_effective'] / g['dense_macs']).mean():.3f}",
                     "test_acc_best (peak, secondary)": fmt_mean_std(g["test_acc_best"].mean(),
                                                                     g["test_acc_best"].std())})
    full = dense["pretrain_epochs"].max() if not dense.empty else None
    for epochs, g in dense.groupby("pretrain_epochs"):
        name = "dense" if epochs == full else f"dense, {int(epochs)} of {int(full)} epochs (plateau check)"
        rows.append({removed: "0%", "arm": name, "lr": None, "seeds": len(g), "after prune": "",
                     "test_acc (final)": fmt_mean_std(g["test_acc"].mean(), g["test_acc"].std()),
                     "params kept": "1.000", "MACs kept": "1.000", "test_acc_best (peak, secondary)": ""})
    return pd.DataFrame(rows)


def paired(final: pd.DataFrame, target: float, a: str, b: str, direction: int = 1) -> dict | None:
    """Paired Δ final test accuracy of arm ``a`` minus arm ``b`` at ``target`` over their common seeds."""
    sub = final[final["target"].astype(float).round(6) == round(target, 6)]
    return paired_cells(sub[sub["scorer"] == a], sub[sub["scorer"] == b], direction)


def paired_table(final: pd.DataFrame) -> pd.DataFrame:
    rows = []
    removed = removed_label(final)
    for target in sorted(final["target"].astype(float).unique()):
        for b in sorted(set(final.loc[final["target"].astype(float) == target, "scorer"]) - {"agf"}):
            p = paired(final, target, "agf", b)
            if p is not None:
                rows.append({removed: f"{target:.2%}", "A": "agf", "B": b, "seeds": p["seeds"],
                             "A − B (95% CI, wins)": p["delta"].text(), "verdict (A > B)": p["verdict"]})
    return pd.DataFrame(rows)


def strongest_other(final: pd.DataFrame, target: float, exclude: tuple[str, ...]) -> str | None:
    """The arm (not in ``exclude``) with the best mean final *validation* accuracy at ``target``."""
    sub = final[(final["target"].astype(float).round(6) == round(target, 6)) & ~final["scorer"].isin(exclude)]
    return None if sub.empty else sub.groupby("scorer")["val_acc"].mean().idxmax()


def claims(results_dir) -> list[dict]:
    """A1: AGF beats the strongest other scorer (chosen on val) at 75 % channel removal; A2: at each kept width
    the inherited (AGF-pruned, fine-tuned) network beats the same architecture trained from scratch."""
    out = []
    for cid, study, df, spec in recorded(results_dir, STUDIES, study_runs):
        final = arms(df, spec)
        cmd = f"python -m experiments.study {study} && flowprune report claims"
        if cid == "A1":
            base = strongest_other(final, 0.75, exclude=("agf", *CONTROLS))
            p = base and paired(final, 0.75, "agf", base)
            if p:
                out.append({"id": "A1", "paper": "AGF is the best scorer at 75 % channel removal (ImageNet ResNet-50, "
                            f"§3.2: AGF {STRESS75['agf']} vs random {STRESS75['random']}, Wanda {STRESS75['wanda']}, "
                            f"Taylor {STRESS75['taylor']})", "setting": "Fashion-MNIST ResNet-8, 75 % of internal "
                            "channels removed, 5 ep. fine-tuning from dense, LR on val",
                            "ours": f"AGF {p['a_mean']:.2f} vs {base} {p['b_mean']:.2f} (strongest on val)",
                            "delta": p["delta"].text(), "verdict": p["verdict"], "command": cmd})
            continue
        if cid == "A3":
            out.extend(a3_claims(final, cmd))
            continue
        for target in sorted(final.loc[final["scorer"] == "agf (scratch)", "target"].astype(float).unique()):
            p = paired(final, target, "agf", "agf (scratch)")
            if p:
                k = PHASE_TRANSITION[("agf", 32)][0], PHASE_TRANSITION[("scratch", 32)][0]
                out.append({"id": f"A2 {target:.2%}", "paper": "inherited weights beat the same narrow architecture "
                            f"trained from scratch, collapsing gap at extreme width (§3.1, WRN k=32: {k[0]} vs {k[1]})",
                            "setting": f"Fashion-MNIST ResNet-8, {target:.2%} of internal channels removed; scratch "
                            "trained for the whole budget", "ours": f"AGF {p['a_mean']:.2f} vs scratch "
                            f"{p['b_mean']:.2f}", "delta": p["delta"].text(), "verdict": p["verdict"], "command": cmd})
    return out


def a3_claims(final: pd.DataFrame, cmd: str) -> list[dict]:
    """A3 per MLP width: AGF vs the stronger of Wanda and RIA on validation (paper, 50 % width: AGF 86.81 vs Wanda
    84.96; 25 %: every scorer near 81-82, RIA 82.24 vs AGF 81.89); and T = 10 vs T = 100 calibration batches (the
    paper: +0.34 for T = 10)."""
    out = []
    setting = "Fashion-MNIST vit_micro (MLP width 256), {} of MLP neurons removed, 5 ep. fine-tuning from dense, LR on val"
    for target in sorted(final["target"].dropna().astype(float).unique()):
        width = 1 - target
        base = strongest_other(final, target, exclude=("agf", "agf T=100", *CONTROLS))
        p = base and paired(final, target, "agf", base)
        if p:
            paper = ", ".join(f"{k} {v}" for (k, w), v in VIT_BOTTLENECK.items() if abs(w - width) < 1e-9)
            out.append({"id": f"A3 {width:.0%} width", "paper": "AGF beats Wanda/RIA on ViT MLP neurons (ViT-B, §3.3: "
                        f"{paper})", "setting": setting.format(f"{target:.0%}"),
                        "ours": f"AGF {p['a_mean']:.2f} vs {base} {p['b_mean']:.2f} (stronger on val)",
                        "delta": p["delta"].text(), "verdict": p["verdict"], "command": cmd})
        p = paired(final, target, "agf", "agf T=100")
        if p:
            out.append({"id": f"A3 T {width:.0%} width", "paper": "sparse calibration (T = 10) beats dense (T = 100) "
                        f"(§1.1: +{CALIBRATION_T[10] - CALIBRATION_T[100]:.2f}, peak {CALIBRATION_T[10]})",
                        "setting": setting.format(f"{target:.0%}"),
                        "ours": f"T=10 {p['a_mean']:.2f} vs T=100 {p['b_mean']:.2f}",
                        "delta": p["delta"].text(), "verdict": p["verdict"], "command": cmd})
    return out


def write_tables(results_dir, tables) -> None:
    for _, study, df, spec in recorded(results_dir, STUDIES, study_runs):
        final = arms(df, spec)
        dense = df[df["scorer"] == "dense"]
        note = protocol_note(study, spec, controls="; controls at their recipe's LR")
        write_table(cell_table(final, dense), f"study_{study}", tables, note)
        write_table(paired_table(final), f"study_{study}_paired", tables,
                    "Paired by seed (same dense checkpoint): mean difference of final test accuracy, 95 % t-interval, "
                    "pairs won by A.")
