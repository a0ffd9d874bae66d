"""Shared helpers of the AGF reports: read ok records of one experiment, write tables, log to W&B."""
from __future__ import annotations

from functools import partial

import pandas as pd

from flowprune.reports import common as reporting
from flowprune.reports.common import mean_std, write_table  # noqa: F401  (re-exported for the AGF reports)

#: The AGF reports log to their own W&B group.
log_wandb = partial(reporting.log_wandb, group="agf-reports")


def parser(doc: str, experiment: str):
    """:func:`reporting.report_parser` with ``--out`` (tables and figures go under ``<out>/``)."""
    return reporting.report_parser(doc, experiment)


out_dir = reporting.out_dir


#: Settings the AGF experiments vary beyond :data:`reporting.RUN_KEY`.
AGF_KEY = ["calib_T", "pretrain_epochs", "finetune_epochs", "from_scratch"]


def agf_columns(r: dict) -> dict:
    """The AGF columns of one record: scorer label (dense / dense+ft / "<scorer> (scratch)" / scratch), the
    method's own target, calibration T, pretraining and fine-tuning epochs, from_scratch."""
    cfg = r.get("config") or {}
    method = cfg.get("method") or {}
    scorer = reporting._name(method.get("scorer"))
    if method.get("name") == "dense":
        scorer = "dense+ft" if method.get("finetune") else "dense"
    if method.get("from_scratch"):
        scorer = f"{scorer} (scratch)" if scorer != "random" else "scratch"
    return {"scorer": scorer, "target": method.get("target_sparsity"),
            "calib_T": (method.get("calibration") or {}).get("batches"),
            "pretrain_epochs": ((cfg.get("trainer") or {}).get("pretrain") or {}).get("epochs"),
            "finetune_epochs": ((cfg.get("trainer") or {}).get("finetune") or {}).get("epochs"),
            "from_scratch": bool(method.get("from_scratch"))}


def runs(results_dir: str, experiment: str) -> pd.DataFrame:
    """One row per ok record of ``experiment``: the generic columns, :func:`agf_columns`, every scalar metric;
    exits with one line (status 2) when there is none."""
    return reporting.runs_or_exit(results_dir, experiment, extra=agf_columns, key=AGF_KEY)


def with_dense_rows(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` plus a "dense" row per seed: the unpruned model itself (``dense_test_acc`` of that seed's dense+ft
    record, whatever its fine-tuning budget), so the dense + extra fine-tuning control has its reference."""
    base = df[df.scorer == "dense+ft"].drop_duplicates("seed").assign(
        scorer="dense", test_acc=lambda d: d.dense_test_acc, test_acc_best=lambda d: d.dense_test_acc,
        acc_after_prune=float("nan"), finetune_epochs=0)
    return pd.concat([df[df.scorer != "dense"], base], ignore_index=True)


def paired_delta(df: pd.DataFrame, ref: pd.DataFrame, value: str, by: str | list[str],
                 match: list[str] = ("seed",)) -> dict:
    """Per group of ``by``: "mean ± std (wins/n)" of ``value`` minus the ``ref`` row's ``value`` that has the
    same ``match`` columns (same seed: same dense model and data order). Groups without a match are left out."""
    match = list(match)
    base = ref.drop_duplicates(match, keep="last").set_index(match)[value]
    keys = pd.MultiIndex.from_frame(df[match]) if len(match) > 1 else pd.Index(df[match[0]])
    diff = df.assign(_d=df[value].to_numpy() - base.reindex(keys).to_numpy()).dropna(subset=["_d"])
    out = {}
    for k, d in diff.groupby(by)["_d"]:
        std = d.std(ddof=1) if len(d) > 1 else 0.0
        out[k] = f"{d.mean():+.2f} ± {std:.2f} ({int((d > 0).sum())}/{len(d)})"
    return out
