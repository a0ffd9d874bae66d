"""Shared helpers of the AGF report scripts: read ok records of one experiment, write tables, log to W&B."""
from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[0]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import reporting  # noqa: E402
from experiments.results import ResultsStore  # noqa: E402
from reporting import markdown, mean_std, write_table  # noqa: E402,F401  (re-exported for the agf scripts)

#: The AGF report scripts log to their own W&B group.
log_wandb = partial(reporting.log_wandb, group="agf-reports")


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
