"""Generic helpers of every report: read the results store into a DataFrame, aggregate over seeds,
write tables (md/csv/tex) and figures (PNG/PDF), log them to W&B.

Reports only read records (``experiments.results``) and write under ``<out>/tables`` and ``<out>/figures``
(``--out`` defaults to ``--results-dir``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Iterable

import pandas as pd

from experiments.results import ResultsStore

#: A re-run of the same setting (these columns equal) replaces the earlier record.
RUN_KEY = ["experiment", "method", "scorer", "model", "dataset", "target", "seed"]


def _name(node) -> str | None:
    """``cfg.x.name`` when ``x`` is a config group dict, else ``x`` itself (a plain string or None)."""
    return node.get("name") if isinstance(node, dict) else node


def flatten_record(r: dict) -> dict:
    """One row: ids, the setting (method/model/dataset/target/scorer), every scalar metric, the config dict."""
    cfg, metrics = r.get("config") or {}, r.get("metrics") or {}
    method = cfg.get("method") or {}
    target = (cfg.get("sparsity") or {}).get("target", method.get("target_sparsity"))
    row = {"run_id": r.get("run_id"), "experiment": r.get("experiment"), "status": r.get("status"),
           "seed": r.get("seed"), "method": _name(method), "scorer": _name(method.get("scorer")),
           "model": _name(cfg.get("model")), "dataset": _name(cfg.get("dataset")), "target": target}
    row.update({k: v for k, v in metrics.items() if v is None or isinstance(v, (int, float, str, bool))})
    row["config"] = cfg
    return row


def load_runs(results_dir: str | Path, experiment: str | Iterable[str] | None = None,
              status: str | None = "ok", extra: Callable[[dict], dict] | None = None,
              key: Iterable[str] = (), study_only: bool = False,
              records: Iterable[dict] | None = None) -> pd.DataFrame:
    """Records of ``results_dir`` as one flat row each (see :func:`flatten_record`).

    ``experiment``: a name, several names, or None for all; ``status``: "ok", "failed" or None for both.
    ``extra(record)`` adds (or overrides) columns of a family of experiments; ``key`` names those of them that
    tell settings apart. A re-run of the same setting (:data:`RUN_KEY` + ``key``) keeps only the last record.
    ``study_only``: read the committed study store alone (``results/store``), so tables rebuild on a fresh clone.
    ``records``: those records, already read, instead of reading the store again.
    """
    wanted = None if experiment is None else {experiment} if isinstance(experiment, str) else set(experiment)
    if records is None:
        records = ResultsStore(results_dir).records(study_only)
    rows = [{**flatten_record(r), **(extra(r) if extra else {})} for r in records
            if (status is None or r.get("status") == status) and (wanted is None or r.get("experiment") in wanted)]
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    return df.drop_duplicates(subset=RUN_KEY + list(key), keep="last").reset_index(drop=True)


def report_parser(doc: str, experiment: str | None = None, wandb: bool = True) -> argparse.ArgumentParser:
    """The arguments every report shares: ``--results-dir``, ``--experiment`` (required when there is no
    default), ``--wandb`` and ``--out`` (see :func:`out_dir`); the description is the first paragraph of
    ``doc``."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--results-dir", default="results", help="the results store to read (default results)")
    ap.add_argument("--experiment", default=experiment, required=experiment is None,
                    help="the records' experiment name (experiment_name=)")
    if wandb:
        ap.add_argument("--wandb", action="store_true", help="also log tables and figures to W&B (offline)")
    ap.add_argument("--out", default=None, help="writes <out>/tables and <out>/figures (default: --results-dir)")
    return ap


def out_dir(args, kind: str) -> Path:
    """``<out>/<kind>`` (``kind``: tables, figures or bench; ``--out`` defaults to ``--results-dir``)."""
    return Path(args.out or args.results_dir) / kind


def fail(message: str, code: int = 2):
    """A user error: one line on stderr, exit status ``code`` (2)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def runs_or_exit(results_dir: str | Path, experiment: str | Iterable[str], keys: Iterable[str] = (),
                 **load) -> pd.DataFrame:
    """:func:`load_runs` (``load``: its ``extra``/``key``), or exit 2 with one line when there are no ok records
    or a key is not a column."""
    df = load_runs(results_dir, experiment, **load)
    names = experiment if isinstance(experiment, str) else " or ".join(experiment)
    if df.empty:
        fail(f"no ok records of experiment '{names}' in {Path(results_dir) / 'runs'}; "
             f"run it first or pass --results-dir/--experiment")
    for k in keys:
        if k not in df:
            fail(f"unknown key '{k}'; records have: {', '.join(c for c in df.columns if c != 'config')}")
    return df


def fmt_mean_std(mean: float, std: float, digits: int = 2) -> str:
    """``"m ± s"``, or ``"m"`` alone when the std is undefined (a single seed)."""
    if mean != mean:
        return ""
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if std == std else f"{mean:.{digits}f}"


def mean_std(df: pd.DataFrame, by: list[str], cols: list[str], digits: int = 2) -> pd.DataFrame:
    """Per group of ``by``: ``n``, numeric ``<col>_mean`` / ``<col>_std`` (sample std, ddof=1) and a
    ``<col>`` column of ``"mean ± std"`` strings; columns absent from ``df`` are skipped."""
    g = df.groupby(by, dropna=False)
    out = g.size().rename("n").to_frame()
    for c in cols:
        if c not in df:
            continue
        out[f"{c}_mean"] = g[c].mean()
        out[f"{c}_std"] = g[c].std(ddof=1)
        out[c] = [fmt_mean_std(m, s, digits) for m, s in zip(out[f"{c}_mean"], out[f"{c}_std"])]
    return out.reset_index()


def pct(target) -> str:
    """A sparsity target as a column label: 0.9 -> "90%", 0.965 -> "96.5%" (non-numbers unchanged)."""
    try:
        return f"{float(target) * 100:g}%" if target == target and target is not None else "-"
    except (TypeError, ValueError):
        return str(target)


def key_label(key: str, value) -> str:
    """How a grouping value is shown: targets as percentages, everything else as text."""
    return pct(value) if key == "target" else str(value)


def _labels(keys: list[str], frame: pd.DataFrame) -> list[tuple[str, ...]]:
    return [tuple(key_label(k, v) for k, v in zip(keys, vals)) for vals in frame[keys].itertuples(index=False)]


def cell_text(mean: float, std: float, n: int, sparsity: float | None = None, digits: int = 2) -> str:
    """One table cell: ``"89.12 ± 0.10 (3) [s=0.900]"`` (mean ± std over n seeds, mean achieved sparsity)."""
    if mean != mean or mean is None:
        return ""
    text = f"{fmt_mean_std(mean, std, digits)} ({n})"
    return text + (f" [s={sparsity:.3f}]" if sparsity is not None and sparsity == sparsity else "")


def pivot_cells(df: pd.DataFrame, rows: list[str], cols: list[str], metric: str = "test_acc") -> pd.DataFrame:
    """A wide table: one row per value of ``rows``, one column per value of ``cols`` (labels joined by " / ",
    in sorted order), each cell :func:`cell_text` of ``metric`` over the group's records (seeds)."""
    agg = mean_std(df, rows + cols, [metric, "sparsity"])
    sp = agg["sparsity_mean"] if "sparsity_mean" in agg else pd.Series([None] * len(agg))
    agg["cell"] = [cell_text(m, s, n, x) for m, s, n, x in
                   zip(agg[f"{metric}_mean"], agg[f"{metric}_std"], agg["n"], sp)]
    return spread(agg, rows, cols, "cell")


def spread(long: pd.DataFrame, rows: list[str], cols: list[str], value: str) -> pd.DataFrame:
    """Long -> wide: one row per ``rows`` value, one column per ``cols`` value (labels joined by " / " in
    sorted key order, targets as "90%"), cells from ``value`` ("" where a combination is absent)."""
    long = long.assign(_col=[" / ".join(t) for t in _labels(cols, long)], _row=_labels(rows, long))
    col_order = list(dict.fromkeys(long.sort_values(cols, na_position="last", kind="stable")["_col"]))
    row_order = list(dict.fromkeys(long.sort_values(rows, na_position="last", kind="stable")["_row"]))
    cells = {(r, c): v for r, c, v in zip(long["_row"], long["_col"], long[value])}
    return pd.DataFrame([list(r) + [cells.get((r, c), "") for c in col_order] for r in row_order],
                        columns=rows + col_order)


def markdown(df: pd.DataFrame) -> str:
    """A GitHub markdown table (no tabulate dependency); a table without columns (nothing to compare yet, e.g.
    the paired table of a study with one seed) says so in a line instead of an empty table."""
    if len(df.columns) == 0:
        return "_(no rows yet: the store has fewer records than this table needs)_"
    def cell(v):
        if isinstance(v, float):
            return "" if v != v else f"{v:.4g}"
        return "" if v is None else str(v)
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body])


def write_table(df: pd.DataFrame, name: str, out_dir: str | Path, note: str = "") -> Path:
    """``<out_dir>/<name>.{md,csv,tex}`` (the note heads the markdown); returns the markdown path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / f"{name}.csv", index=False)
    (out / f"{name}.md").write_text((note + "\n\n" if note else "") + markdown(df) + "\n")
    (out / f"{name}.tex").write_text(df.to_latex(index=False))
    return out / f"{name}.md"


def save_figure(fig, name: str, out_dir: str | Path) -> list[Path]:
    """``<out_dir>/<name>.png`` (150 dpi) and ``.pdf`` without a creation date (a rebuild from the same store gives
    the same bytes); closes the figure; returns both paths."""
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=150, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight", metadata={"CreationDate": None})
    plt.close(fig)
    return paths


def plot_mean_std(ax, df: pd.DataFrame, x: str, y: str, hue: str, group: str | None = None, **kw) -> None:
    """One line per value of ``hue``: mean ``y`` ± std (error bars) over the records of each ``group`` value
    (default ``x``), placed at the group's mean ``x`` (e.g. group=target, x=achieved sparsity)."""
    by = group or x
    for key, sub in df.groupby(hue, dropna=False, sort=True):
        g = sub.groupby(by, dropna=True)
        pts = pd.DataFrame({"x": g[x].mean(), "y": g[y].mean(), "err": g[y].std(ddof=1).fillna(0.0)}).sort_values("x")
        ax.errorbar(pts["x"], pts["y"], yerr=pts["err"], marker="o", capsize=3, label=str(key), **kw)


def log_wandb(enabled: bool, name: str, tables: dict[str, pd.DataFrame], images: dict[str, Path],
              results_dir: str | Path, group: str = "reports"):
    """Log tables/figures to one W&B run (offline mode unless configured) when ``enabled``."""
    if not enabled:
        return
    from experiments.tracking import Tracker
    tr = Tracker(mode="offline", project="flowprune", group=group, job_type="report", name=name,
                 results_dir=Path(results_dir))
    for key, df in tables.items():
        tr.table(key, [str(c) for c in df.columns], df.astype(str).values.tolist())
    for key, path in images.items():
        tr.image(key, str(path))
    tr.finish()


def matplotlib_agg():
    """``matplotlib.pyplot`` with the non-interactive Agg backend (reports run headless)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt
