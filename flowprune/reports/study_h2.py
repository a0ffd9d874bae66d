"""H2's constant-pressure runs in time: has each λ's density stopped moving, at each epoch budget?

    flowprune report study   -> <out>/tables/study_h2_settling.{md,csv,tex},
                                <out>/figures/study_h2_density_in_time.{png,pdf}

Per (budget, λ), over seeds: the final density, its relative change over the last quarter of the budget (the
claim's criterion: < :data:`SETTLED` for the smallest λ), and the exponent β of a power law in time fitted to the
last half of the curve (D ∝ epoch^−β: β ≈ 0 has settled; a β that does not shrink with the budget never settles,
and then every fixed budget's relative drift over its last quarter is ≈ 1 − (3/4)^β). The figure draws every λ's
mean density curve on log–log axes, one line style per budget.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from flowprune.reports.common import fmt_mean_std, load_runs, matplotlib_agg, save_figure, write_table

SETTLED = 0.05   # relative change of density over the last quarter of the budget, at most


def fractions(curve: list[float] | None) -> list[float] | None:
    """A per-epoch density curve as fractions: records before commit 2ffd861 (2026-12-02) kept the history in percent."""
    if not curve:
        return curve
    return [v / 100 for v in curve] if max(curve) > 1.0 + 1e-9 else list(curve)


def h2_runs(results_dir, experiment: str) -> pd.DataFrame:
    """The study store's constant-λ records of ``experiment``: lam, epochs, seed, density, density_curve."""
    return load_runs(results_dir, experiment, extra=lambda r: {
        "lam": ((r.get("config") or {}).get("method") or {}).get("pressure", {}).get("fixed_lambda"),
        "epochs": ((r.get("config") or {}).get("trainer") or {}).get("epochs"),
        "density_curve": fractions(((r.get("metrics") or {}).get("hyperflows_history") or {}).get("density"))},
        key=["lam", "epochs"], study_only=True)


def last_quarter_drift(curve: list[float]) -> float:
    """|D(end) − D(3/4 of the epochs)| / D(3/4 of the epochs) of a per-epoch density curve."""
    q = curve[int(np.ceil(0.75 * len(curve))) - 1]
    return abs(curve[-1] - q) / max(q, 1e-9)


def time_exponent(curve: list[float]) -> float:
    """β of D ∝ epoch^−β, least squares in log–log space over the last half of the epochs."""
    c = np.asarray(curve, dtype=float)
    e = np.arange(1, len(c) + 1, dtype=float)
    half = slice(len(c) // 2, None)
    keep = c[half] > 0
    if keep.sum() < 2:
        return float("nan")
    return -float(np.polyfit(np.log(e[half][keep]), np.log(c[half][keep]), 1)[0])


def settling_table(df: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (epochs, lam), g in df.dropna(subset=["lam", "epochs"]).groupby(["epochs", "lam"]):
        curves = [c for c in g["density_curve"] if c]
        drift = np.array([last_quarter_drift(c) for c in curves])
        beta = np.array([time_exponent(c) for c in curves])
        rows.append({"epochs": int(epochs), "lambda": float(lam), "seeds": len(g),
                     "density %": fmt_mean_std(100 * g["density"].mean(), 100 * g["density"].std()),
                     "last-quarter change %": fmt_mean_std(100 * drift.mean(), 100 * drift.std()),
                     "beta (last half)": f"{np.nanmean(beta):.3f}",
                     "settled": "yes" if len(drift) and (drift < SETTLED).all() else "no"})
    return pd.DataFrame(rows)


def plot(df: pd.DataFrame, out: Path) -> None:
    plt = matplotlib_agg()
    lams = sorted(df["lam"].dropna().astype(float).unique())
    colors = plt.cm.viridis(np.linspace(0, 0.9, max(len(lams), 1)))
    styles = ["--", "-", ":", "-."]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for k, (epochs, budget) in enumerate(sorted(df.groupby(df["epochs"].astype(int)))):
        for color, lam in zip(colors, lams):
            curves = [c for c in budget[budget["lam"].astype(float) == lam]["density_curve"] if c]
            if not curves:
                continue
            mean = 100 * np.mean([c[:min(map(len, curves))] for c in curves], axis=0)
            ax.plot(np.arange(1, len(mean) + 1), mean, styles[k % len(styles)], color=color, lw=1.2,
                    label=f"λ = {lam:g}" if k == 0 else None)
        ax.plot([], [], styles[k % len(styles)], color="grey", label=f"{epochs} epochs")
    ax.set(xscale="log", yscale="log", xlabel="epoch", ylabel="density (% of weights kept)",
           title="H2: constant-λ Hyperflows on LeNet-300, density in time (mean over seeds)")
    ax.legend(fontsize=7, ncol=2)
    save_figure(fig, "study_h2_density_in_time", out)


def write_tables(results_dir, tables: Path, figures: Path, study: str = "h2_lenet300") -> None:
    from experiments.study import StudySpec

    experiment = StudySpec.load(study).experiment
    df = h2_runs(results_dir, experiment)
    if df.empty:
        return
    write_table(settling_table(df), "study_h2_settling", tables,
                f"H2 ({experiment}): per epoch budget and λ, final density, its relative change over the last quarter "
                f"of the budget (settled: < {100 * SETTLED:.0f} % on every seed) and the exponent β of D ∝ epoch^-β "
                "over the last half (a β that stays with the budget never settles).")
    plot(df, figures)
