"""Study N1 (ours): N:M masks (``method.pattern``) against unstructured masks of the same sparsity.

    flowprune report study   -> <out>/tables/study_<study>.*, study_<study>_paired.*   (n1_lenet300, n1_resnet8)

Same protocol as :mod:`flowprune.reports.study`: each (sparsity, arm) cell's LR is chosen on validation at the
selection seed; the headline is the final-epoch test accuracy at that LR over every seed; the N:M arm and the
unstructured arm of a sparsity are paired by seed (same dense checkpoint). The table also shows the accuracy right
after pruning (before fine-tuning), where a pattern's constraint shows first, and the sparsity each arm delivered.
"""
from __future__ import annotations

import pandas as pd

from flowprune.reports.common import fmt_mean_std, write_table
from flowprune.reports.study import TOLERANCE, final_runs, load_study, paired_cells, protocol_note, recorded

STUDIES = {"N1": "n1_lenet300", "N1-resnet8": "n1_resnet8"}
#: the proxy of each study, for its claims rows
SETTINGS = {"N1": "Fashion-MNIST LeNet-300, one-shot magnitude at {target:.1%}, 15 ep. fine-tuning from the same dense "
                  "model, LR on val",
            "N1-resnet8": "Fashion-MNIST ResNet-8 (every conv/linear weight; 2:4 along input channels), one-shot "
                          "magnitude at {target:.1%}, 5 ep. fine-tuning from the same dense model, LR on val"}
ARM = "arm"
#: the claim's direction: the N:M arm is claimed to lose accuracy (Δ = N:M − unstructured < 0)
DIRECTION = -1


def extra(r: dict) -> dict:
    """``arm``: the method, with its N:M pattern where it has one (``magnitude 2:4``)."""
    cfg = r.get("config") or {}
    method = cfg.get("method") or {}
    pattern = method.get("pattern")
    return {ARM: f"{method.get('name')} {pattern}" if pattern else method.get("name"), "pattern": pattern,
            "lr": method.get("lr"),
            "pretrain_epochs": ((cfg.get("trainer") or {}).get("pretrain") or {}).get("epochs")}


def study_runs(results_dir, study: str):
    from experiments.study import StudySpec

    spec = StudySpec.load(study)
    return load_study(results_dir, spec, extra, ["lr", ARM]), spec


def _ms(g: pd.DataFrame, key: str, digits: int = 2) -> str:
    if key not in g or g[key].isna().all():
        return ""
    return fmt_mean_std(g[key].mean(), g[key].std(), digits)


def cell_table(final: pd.DataFrame, dense: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (target, arm), g in sorted(final.groupby(["target", ARM]), key=lambda kv: (float(kv[0][0]), kv[0][1])):
        rows.append({"sparsity": f"{float(target):.1%}", "arm": arm, "lr": g["chosen_lr"].iloc[0], "seeds": len(g),
                     "test_acc (final)": _ms(g, "test_acc"),
                     "acc after pruning (before fine-tuning)": _ms(g, "acc_after_prune"),
                     "sparsity delivered": f"{g['sparsity'].mean():.4f}",
                     "test_acc_best (peak, secondary)": _ms(g, "test_acc_best")})
    if not dense.empty:
        rows.append({"sparsity": "0%", "arm": "dense", "lr": None, "seeds": len(dense),
                     "test_acc (final)": _ms(dense, "test_acc"), "acc after pruning (before fine-tuning)": "",
                     "sparsity delivered": "0", "test_acc_best (peak, secondary)": ""})
    return pd.DataFrame(rows)


def pairs(final: pd.DataFrame):
    """(target, pattern, N:M arm, unstructured arm, paired result) for every sparsity that has both arms. Where the
    two arms delivered different sparsities (a model whose layers cannot all carry the pattern keeps those dense),
    the comparison is not at equal sparsity: no verdict."""
    for target, sub in sorted(final.groupby("target"), key=lambda kv: float(kv[0])):
        plain = sub[sub["pattern"].isna()]
        for arm, g in sub[sub["pattern"].notna()].groupby(ARM):
            base = plain[plain["method"] == g["method"].iloc[0]]
            p = paired_cells(g, base, DIRECTION)
            if p is None:
                continue
            got, asked = g["sparsity"].mean(), base["sparsity"].mean()
            if abs(got - asked) > TOLERANCE:
                p = {**p, "verdict": f"no verdict: sparsity delivered {got:.3f} vs {asked:.3f} (layers whose input "
                                     "size is not a multiple of M stay dense)"}
            yield float(target), g["pattern"].iloc[0], arm, base[ARM].iloc[0], p


def paired_table(final: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame([{"sparsity": f"{t:.1%}", "A": a, "B": b, "seeds": p["seeds"],
                          "A − B (95% CI, pairs with A < B)": p["delta"].text(),
                          "verdict (A < B: the pattern costs accuracy)": p["verdict"]}
                         for t, _, a, b, p in pairs(final)])


def write_tables(results_dir, tables) -> None:
    for _, study, df, spec in recorded(results_dir, STUDIES, study_runs):
        final = final_runs(df[df[ARM] != "dense"], spec, arm=ARM)
        write_table(cell_table(final, df[df[ARM] == "dense"]), f"study_{study}", tables, protocol_note(study, spec))
        write_table(paired_table(final), f"study_{study}_paired", tables,
                    "Paired by seed (same dense checkpoint): mean difference of final test accuracy, "
                    "N:M − unstructured, 95 % t-interval, and the pairs on the claimed side (N:M below unstructured).")


def claims(results_dir) -> list[dict]:
    """N1: an N:M mask costs accuracy against an unstructured mask of the same sparsity (after fine-tuning)."""
    out = []
    for key, study, df, spec in recorded(results_dir, STUDIES, study_runs):
        final = final_runs(df[df[ARM] != "dense"], spec, arm=ARM)
        for target, pattern, _, _, p in pairs(final):
            out.append({"id": f"{key} {pattern}",
                        "paper": "ours (no paper): an N:M mask (GPU sparse kernels' pattern) costs accuracy against an "
                                 "unstructured mask of the same sparsity",
                        "setting": SETTINGS[key].format(target=target),
                        "ours": f"{pattern} {p['a_mean']:.2f} vs unstructured {p['b_mean']:.2f}",
                        "delta": p["delta"].text(), "verdict": p["verdict"],
                        "command": f"python -m experiments.study {study} && flowprune report claims"})
    return out
