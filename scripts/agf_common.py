"""Shared helpers of the AGF report scripts: read ok records of one experiment, write tables, log to W&B."""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from experiments.results import ResultsStore  # noqa: E402


def runs(results_dir: str, experiment: str) -> pd.DataFrame:
    """One row per ok record whose experiment equals ``experiment``: scorer, seed, target, metrics.*."""
    rows = []
    for r in ResultsStore(results_dir).records():
        if r.get("status") != "ok" or r.get("experiment") != experiment:
            continue
        cfg, m = r.get("config") or {}, r.get("metrics") or {}
        method = cfg.get("method") or {}
        scorer = method.get("scorer")
        scorer = scorer.get("name") if isinstance(scorer, dict) else scorer
        if method.get("name") == "dense":
            scorer = "dense+ft" if method.get("finetune") else "dense"
        if method.get("from_scratch"):
            scorer = f"{scorer} (scratch)" if scorer != "random" else "scratch"
        row = {"run_id": r["run_id"], "seed": r.get("seed"), "scorer": scorer, "model": (cfg.get("model") or {}).get("name"),
               "target": method.get("target_sparsity"), "calib_T": (method.get("calibration") or {}).get("batches"),
               "pretrain_epochs": ((cfg.get("trainer") or {}).get("pretrain") or {}).get("epochs"),
               "from_scratch": bool(method.get("from_scratch"))}
        row.update({k: v for k, v in m.items() if isinstance(v, (int, float, str)) or v is None})
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    # a re-run of the same setting replaces the earlier record
    key = ["scorer", "seed", "target", "calib_T", "pretrain_epochs", "from_scratch", "model"]
    return df.drop_duplicates(subset=key, keep="last").reset_index(drop=True)


def mean_std(df: pd.DataFrame, by: list[str], cols: list[str]) -> pd.DataFrame:
    """``mean ± std (n)`` strings per group, plus numeric ``<col>_mean`` columns for sorting/plots."""
    g = df.groupby(by, dropna=False)
    out = g.size().rename("n").to_frame()
    for c in cols:
        if c not in df:
            continue
        out[f"{c}_mean"] = g[c].mean()
        out[f"{c}_std"] = g[c].std(ddof=1)
        out[c] = [f"{m:.2f} ± {s:.2f}" if s == s else f"{m:.2f}" for m, s in zip(out[f"{c}_mean"], out[f"{c}_std"])]
    return out.reset_index()


def write_table(df: pd.DataFrame, name: str, out_dir: str, note: str = "") -> Path:
    """``results/tables/<name>.{md,csv,tex}``; returns the markdown path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / f"{name}.csv", index=False)
    md = markdown(df)
    (out / f"{name}.md").write_text((note + "\n\n" if note else "") + md + "\n")
    (out / f"{name}.tex").write_text(df.to_latex(index=False))
    return out / f"{name}.md"


def markdown(df: pd.DataFrame) -> str:
    """A GitHub markdown table (no tabulate dependency)."""
    def cell(v):
        if isinstance(v, float):
            return "" if v != v else f"{v:.4g}"
        return str(v)
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body])


def log_wandb(enabled: bool, name: str, tables: dict[str, pd.DataFrame], images: dict[str, Path], results_dir: str):
    """Log tables/figures to one W&B run (offline mode unless configured) when ``enabled``."""
    if not enabled:
        return
    from experiments.tracking import Tracker
    tr = Tracker(mode="offline", project="flowprune", group="agf-reports", job_type="report", name=name,
                 results_dir=Path(results_dir))
    for key, df in tables.items():
        tr.table(key, [str(c) for c in df.columns], df.astype(str).values.tolist())
    for key, path in images.items():
        tr.image(key, str(path))
    tr.finish()
