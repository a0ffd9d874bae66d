"""Sparsity–pressure power law (Hyperflows eq. 15) from constant-pressure sweeps in the results store.

Each ok record of the experiment (default ``hyperflows/power_law_proxy``) is one run at a constant
pressure λ = ``config.method.pressure.fixed_lambda`` (the coefficient multiplying mean(t)); its final
density is ``metrics.density`` (fraction of flow parameters with t ≥ 0), or 1 − ``metrics.sparsity`` when
absent. Densities are reported in % as in the paper. Per model (and dataset): the mean density over seeds
at each λ (a collapsed seed counts as 0 %; a λ whose mean is 0 % is a collapse and is left out of the fit),
the variable-exponent and pure power-law fits of ``hyperflows.power_law``, and

  <out>/figures/power_law_<model>.{png,pdf}   log–log density vs λ, both fits, collapsed points marked
  <out>/tables/power_law.{md,csv,tex}         constants per model beside the refits of the authors' sweeps

Runs are grouped by model and dataset only: keep one t-optimizer per experiment (the paper's law is the
Adam-on-t series, spec A10). A re-run at the same λ and seed replaces the earlier record.

``--reference-demo`` skips the store and draws the same figure for the authors' sweeps (spec §4.1),
writing ``figures/power_law_reported_<sweep>.*`` and ``tables/power_law_reported.*``.

    flowprune report power_law [--results-dir results] [--experiment hyperflows/power_law_proxy]
    flowprune report power_law --reference-demo
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from flowprune.reports.common import (
    fail,
    load_runs,
    log_wandb,
    matplotlib_agg,
    out_dir,
    report_parser,
    save_figure,
    write_table,
)
from hyperflows.power_law import REPORTED_SWEEPS, PowerLawFit, fit_power_law

REPORTED_SOURCE = "reported (refit of the authors' data)"
NOTE = ("Sparsity–pressure power law, eq. (15): D(λ) = c·λ^-(α0 + α1 ln λ), fitted as ln D quadratic in ln λ "
        "(least squares, collapsed 0 % points dropped); pure law D = c'·λ^-α. c in % of flow parameters kept; "
        "R² in log space. The authors' \"ResNet-50 / CIFAR-10\" sweep is ResNet-18 in their stored data.")


def fixed_lambda(config: dict) -> float | None:
    """``config.method.pressure.fixed_lambda`` or None."""
    pressure = ((config or {}).get("method") or {}).get("pressure") or {}
    value = pressure.get("fixed_lambda") if isinstance(pressure, dict) else None
    return None if value is None else float(value)


def density_pct(row: pd.Series) -> float:
    """Final density in %: ``metrics.density``, else 1 − ``metrics.sparsity`` (both fractions)."""
    density = row.get("density")
    if density is None or density != density:
        sparsity = row.get("sparsity")
        density = np.nan if sparsity is None else 1.0 - sparsity
    return 100.0 * float(density)


def sweep_runs(results_dir: str | Path, experiment: str) -> pd.DataFrame:
    """Ok records of ``experiment`` with a fixed λ: one row each with model, dataset, seed, lam, density_pct.

    λ is part of the de-duplication key, so the sweep's runs stay separate.
    """
    df = load_runs(results_dir, experiment, extra=lambda r: {"lam": fixed_lambda(r.get("config"))}, key=["lam"])
    if df.empty or df["lam"].isna().all():
        return pd.DataFrame()
    df = df[df["lam"].notna()]
    df = df.assign(density_pct=df.apply(density_pct, axis=1))
    bad = df[(df["density_pct"] < 0) | (df["density_pct"] > 100)]
    if len(bad):
        raise ValueError(f"run {bad['run_id'].iloc[0]}: metrics.density must be a fraction in [0, 1] "
                         f"(got {bad['density_pct'].iloc[0] / 100:g}); record the fraction, not %")
    return df[["model", "dataset", "seed", "lam", "density_pct"]].dropna(subset=["density_pct"]).reset_index(drop=True)


def mean_over_seeds(runs: pd.DataFrame) -> pd.DataFrame:
    """Per λ: mean density (%) over seeds and the number of seeds, sorted by λ."""
    g = runs.groupby("lam")["density_pct"]
    return pd.DataFrame({"density_pct": g.mean(), "n_seeds": g.size()}).reset_index().sort_values("lam")


def fit_row(source: str, model: str, dataset: str, fit: PowerLawFit) -> dict:
    """One table row: the constants of both fits."""
    return {"source": source, "model": model, "dataset": dataset, "points": fit.n_points,
            "c_pct": fit.c, "alpha0": fit.alpha0, "alpha1": fit.alpha1, "r2": fit.r2,
            "c_pure_pct": fit.c_pure, "alpha": fit.alpha, "r2_pure": fit.r2_pure}


def plot_sweep(lam: np.ndarray, density: np.ndarray, fit: PowerLawFit, title: str):
    """Log–log density (%) vs λ: fitted points, both fits over the fitted range, collapses at the bottom."""
    plt = matplotlib_agg()
    lam, density = np.asarray(lam, float), np.asarray(density, float)
    alive = (lam > 0) & (density > 0)
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    ax.loglog(lam[alive], density[alive], "o", color="C0", label=f"runs ({fit.n_points} points fitted)")
    grid = np.geomspace(lam[alive].min(), lam[alive].max(), 200)
    ax.loglog(grid, fit.predict(grid), "-", color="C1",
              label=f"eq. (15): c={fit.c:.3g}%, α0={fit.alpha0:.3f}, α1={fit.alpha1:.4f}, R²={fit.r2:.4f}")
    ax.loglog(grid, fit.predict(grid, pure=True), "--", color="C2",
              label=f"pure: c={fit.c_pure:.3g}%, α={fit.alpha:.3f}, R²={fit.r2_pure:.4f}")
    collapsed = (lam > 0) & ~alive
    if collapsed.any():
        floor = density[alive].min() / 3
        ax.plot(lam[collapsed], np.full(collapsed.sum(), floor), "v", color="C3", markersize=8,
                label="collapsed (0 %, not fitted)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("pressure coefficient λ (multiplies mean(t))")
    ax.set_ylabel("final density (% of weights kept)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def report_sweep(source: str, model: str, dataset: str, lam, density, title: str, figure: str,
                 figures_dir: Path) -> tuple[dict, Path]:
    """Fit one sweep, save its figure; returns the table row and the PNG path."""
    fit = fit_power_law(lam, density)
    png, _ = save_figure(plot_sweep(lam, density, fit, title), figure, figures_dir)
    return fit_row(source, model, dataset, fit), png


def reported_rows() -> list[dict]:
    """Table rows of the authors' sweeps, refitted (spec §4.2)."""
    return [fit_row(REPORTED_SOURCE, s["model"], s["dataset"], fit_power_law(s["lam"], s["density_pct"]))
            for s in REPORTED_SWEEPS.values()]


def demo_report(figures: Path) -> tuple[list[dict], dict[str, Path]]:
    """``--reference-demo``: the authors' sweeps through the same fit and figure as ours."""
    rows, images = [], {}
    for key, s in REPORTED_SWEEPS.items():
        row, images[key] = report_sweep(REPORTED_SOURCE, s["model"], s["dataset"], s["lam"], s["density_pct"],
                                        f"{s['label']}\n{REPORTED_SOURCE}", f"power_law_reported_{key}", figures)
        rows.append(row)
    return rows, images


def store_report(runs: pd.DataFrame, experiment: str, figures: Path) -> tuple[list[dict], dict[str, Path]]:
    """One fit and figure per (model, dataset) of the store (a sweep too short to fit is skipped with a
    note); no rows when none could be fitted."""
    rows, images = [], {}
    for (model, dataset), g in runs.groupby(["model", "dataset"], sort=True, dropna=False):
        pts = mean_over_seeds(g)
        title = f"{model} / {dataset}\n{experiment} (mean of {int(pts['n_seeds'].max())} seed(s) per λ)"
        try:
            row, images[f"{model}_{dataset}"] = report_sweep(
                f"ours: {experiment}", model, dataset, pts["lam"], pts["density_pct"], title,
                figure_name(model, dataset, runs), figures)
        except ValueError as exc:
            print(f"skipped {model}/{dataset}: {exc}", file=sys.stderr)
            continue
        rows.append(row)
    return rows, images


def figure_name(model: str, dataset: str, runs: pd.DataFrame) -> str:
    """``power_law_<model>``, with ``_<dataset>`` appended when the model was swept on several datasets."""
    several = runs.loc[runs["model"] == model, "dataset"].nunique() > 1
    return f"power_law_{model}_{dataset}" if several else f"power_law_{model}"


def main(argv: list[str] | None = None) -> int:
    ap = report_parser(__doc__, "hyperflows/power_law_proxy")
    ap.add_argument("--reference-demo", action="store_true",
                    help="fit and plot the authors' sweeps (spec §4.1) instead of the results store")
    args = ap.parse_args(argv)
    figures, tables = out_dir(args, "figures"), out_dir(args, "tables")

    if args.reference_demo:
        name, (rows, images) = "power_law_reported", demo_report(figures)
    else:
        try:
            runs = sweep_runs(args.results_dir, args.experiment)
        except ValueError as exc:
            fail(str(exc))
        if runs.empty:
            fail(f"no ok records of experiment '{args.experiment}' with config.method.pressure.fixed_lambda in "
                 f"{Path(args.results_dir) / 'runs'}; run the sweep (python run.py -m experiment={args.experiment}) "
                 f"or pass --reference-demo")
        name, (rows, images) = "power_law", store_report(runs, args.experiment, figures)
        if not rows:
            fail(f"no model of experiment '{args.experiment}' has a sweep that can be fitted (see above)")
        rows += reported_rows()

    table = pd.DataFrame(rows)
    write_table(table, name, tables, note=NOTE)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"wrote {tables / name}.{{md,csv,tex}} and {len(images)} figure(s) under {figures}")
    log_wandb(args.wandb, name, {name: table}, images, args.results_dir, group="hyperflows-reports")
    return 0


if __name__ == "__main__":
    sys.exit(main())
