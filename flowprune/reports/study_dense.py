"""Are the study's dense models converged? Floors, the plateau check, and their learning curves.

    flowprune report study   -> <out>/tables/study_dense.{md,csv,tex}, <out>/figures/study_dense_curves.{png,pdf}

Every study trains its dense models with its recipe's full epoch budget and (``plateau_check``) once more with 3/4
of it. A model is converged when it meets its floor (mean over seeds, the study issue's numbers) and the last
quarter of the budget adds < :data:`PLATEAU` points (full minus 3/4 budget, paired by seed). Where a budget is
capped (the ViT: 40 CPU-minutes per seed), the issue asks to show the learning curve flattening instead: the table
gives the mean per-epoch gain over the first and the last quarter of the full-budget curve
(``metrics.dense_curve_test_acc``), and the figure draws every curve.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from flowprune.reports.common import fmt_mean_std, load_runs, matplotlib_agg, save_figure, write_table

#: the study issue's floors: mean dense test accuracy over seeds (%)
FLOORS = {"lenet300": 89.0, "lenet5": 90.0, "resnet8": 92.0, "vit_micro": 85.0}
PLATEAU = 0.3   # points gained over the last quarter of the dense budget, at most


def extra(r: dict) -> dict:
    cfg = r.get("config") or {}
    return {"epochs": ((cfg.get("trainer") or {}).get("pretrain") or {}).get("epochs"),
            "dense_only": "finetune" not in (cfg.get("stages") or []),
            "curve": (r.get("metrics") or {}).get("dense_curve_test_acc"),
            "pretrain_min": ((r.get("stage_seconds") or {}).get("pretrain") or 0.0) / 60}


def dense_runs(results_dir) -> pd.DataFrame:
    """The study store's dense-only records (no fine-tune stage): experiment, model, epochs, seed, test_acc, curve."""
    df = load_runs(results_dir, extra=extra, key=["epochs", "dense_only"], study_only=True)
    if df.empty:
        return df
    return df[(df["method"] == "dense") & df["dense_only"]].reset_index(drop=True)


def quarter_slopes(curve: list[float]) -> tuple[float, float]:
    """Mean per-epoch test-accuracy gain over the first and the last quarter of a learning curve."""
    c = np.asarray(curve, dtype=float)
    q = max(1, round(len(c) / 4))
    return (c[q] - c[0]) / q, (c[-1] - c[-1 - q]) / q


def plateau_gain(g: pd.DataFrame) -> tuple[float | None, int]:
    """Mean over common seeds of (full-budget − 3/4-budget) test accuracy, and the number of pairs."""
    full = max(g["epochs"])
    short = g[g["epochs"] == round(0.75 * full)].set_index("seed")["test_acc"]
    long = g[g["epochs"] == full].set_index("seed")["test_acc"]
    seeds = sorted(set(short.index) & set(long.index))
    return (float((long[seeds] - short[seeds]).mean()), len(seeds)) if seeds else (None, 0)


def convergence_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (study, model): the full budget's accuracy against its floor, the plateau check, the curve's
    slopes, and a verdict. A study that declares another's dense recipe (``plateau_check: false``) points to it."""
    rows = []
    for (exp, model), g in df.groupby(["experiment", "model"]):
        full = max(g["epochs"])
        top = g[g["epochs"] == full]
        mean, floor = top["test_acc"].mean(), FLOORS.get(model)
        gain, pairs = plateau_gain(g)
        covered = ""
        if pairs == 0:
            same = df[(df["model"] == model) & (df["experiment"] != exp)]
            other = [e for e, h in same.groupby("experiment") if plateau_gain(h)[1] and max(h["epochs"]) == full]
            covered = f"see {other[0]}" if other else "not checked"
        slopes = [quarter_slopes(c) for c in top["curve"] if isinstance(c, list) and len(c) >= 4]
        minutes = round(float(top["pretrain_min"].mean()), 1)   # ≈ 0: loaded from the dense cache
        meets = floor is None or mean >= floor
        plateau = gain is not None and gain < PLATEAU
        verdict = ("below floor" if not meets else "converged" if plateau
                   else f"floor met; plateau: {covered}" if pairs == 0 else "floor met, not plateaued")
        rows.append({"study": exp.split("/", 1)[-1], "model": model, "epochs": int(full), "seeds": len(top),
                     "test acc": fmt_mean_std(mean, top["test_acc"].std(ddof=1)), "floor": floor,
                     "gain, last quarter (pairs)": f"{gain:+.2f} ({pairs})" if pairs else covered,
                     "gain/epoch, 1st quarter": round(float(np.mean([s[0] for s in slopes])), 3) if slopes else None,
                     "gain/epoch, last quarter": round(float(np.mean([s[1] for s in slopes])), 3) if slopes else None,
                     "pretrain min/seed": minutes if minutes > 0.1 else "cached", "verdict": verdict})
    return pd.DataFrame(rows)


def curves_figure(df: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """One panel per study with a plateau check: each seed's per-epoch test accuracy at the full budget (solid) and
    at 3/4 of it (dashed), and the model's floor."""
    plt = matplotlib_agg()
    checked = [(e, m) for (e, m), g in df.groupby(["experiment", "model"]) if plateau_gain(g)[1]]
    fig, axes = plt.subplots(1, len(checked), figsize=(4.2 * len(checked), 3.4), squeeze=False)
    for ax, (exp, model) in zip(axes[0], checked):
        g = df[(df["experiment"] == exp) & (df["model"] == model)]
        full = max(g["epochs"])
        for (epochs, seed), r in g.groupby(["epochs", "seed"]):
            c = r["curve"].iloc[-1]
            if isinstance(c, list):
                ax.plot(range(1, len(c) + 1), c, "-" if epochs == full else "--", color=f"C{int(seed)}", lw=1,
                        label=f"seed {seed}, {epochs} ep")
        if model in FLOORS:
            ax.axhline(FLOORS[model], color="grey", ls=":", lw=1, label="floor")
        top = g[g["epochs"] == full]["test_acc"]
        ax.set_ylim(max(top.min() - 6, 50), top.max() + 1)
        ax.set(title=f"{exp.split('/', 1)[-1]}: {model}", xlabel="epoch", ylabel="dense test acc (%)")
        ax.legend(fontsize=6)
    fig.tight_layout()
    return save_figure(fig, "study_dense_curves", out_dir)


def write_tables(results_dir, tables: str | Path, figures: str | Path) -> None:
    df = dense_runs(results_dir)
    if df.empty:
        return
    write_table(convergence_table(df), "study_dense", tables,
                f"Dense models of the studies: final-epoch test accuracy (%) at the full budget against the floor; the "
                f"plateau check is full minus 3/4-budget accuracy, paired by seed (< {PLATEAU} to pass); gain/epoch: "
                f"mean per-epoch gain over the first and last quarter of the full-budget curve; pretrain minutes per "
                f"seed are wall-clock at 1 thread, under the grid's load.")
    curves_figure(df, figures)

