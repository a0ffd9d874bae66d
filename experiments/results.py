"""Append-only results store: one JSON object per finished (or failed) run.

Records live in ``<results_dir>/runs/records.jsonl``. Each record is written with a single
``os.write`` on an ``O_APPEND`` descriptor under an exclusive ``flock``, so parallel jobs
(Hydra multirun, SLURM arrays on a shared filesystem) never interleave or lose a line, and a
killed process leaves either the whole line or nothing.
"""
from __future__ import annotations

import fcntl
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable

RECORD_FILE = "records.jsonl"

#: Keys every record carries (DESIGN.md contract); methods may add more, never rename these.
REQUIRED_KEYS = (
    "run_id", "experiment", "status", "error", "started", "finished", "git_commit",
    "config", "seed", "metrics", "stage_seconds",
)
METRIC_KEYS = (
    "test_acc", "test_acc_best", "dense_test_acc", "sparsity", "params_total", "params_nonzero",
    "macs_dense", "macs_effective", "latency_ms_bs1", "latency_ms_bs64", "device",
)
STAGES = ("pretrain", "calibrate", "prune", "finetune", "evaluate")


def _jsonable(value: Any) -> Any:
    """Turn tensors, numpy scalars, paths and NaNs into plain JSON values."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def complete_record(record: dict) -> dict:
    """Fill the contract keys a record must carry (missing metrics become ``None``)."""
    out = {k: record.get(k) for k in REQUIRED_KEYS}
    out.update({k: v for k, v in record.items() if k not in out})
    metrics = dict(record.get("metrics") or {})
    for key in METRIC_KEYS:
        metrics.setdefault(key, None)
    out["metrics"] = metrics
    stage_seconds = dict(record.get("stage_seconds") or {})
    for key in STAGES:
        stage_seconds.setdefault(key, 0.0)
    out["stage_seconds"] = stage_seconds
    return _jsonable(out)


class ResultsStore:
    """Reads and appends run records under ``<results_dir>/runs``."""

    def __init__(self, results_dir: str | os.PathLike):
        self.root = Path(results_dir)
        self.runs_dir = self.root / "runs"

    @property
    def path(self) -> Path:
        return self.runs_dir / RECORD_FILE

    def check_writable(self) -> None:
        """Fail early, in one line, if records cannot be written here."""
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            probe = self.runs_dir / f".probe-{os.getpid()}"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise PermissionError(
                f"results_dir={self.root} is not writable ({exc.strerror}); "
                f"pass results_dir=<a writable path>") from None

    def append(self, record: dict) -> dict:
        record = complete_record(record)
        line = (json.dumps(record, sort_keys=False) + "\n").encode()
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            written = os.write(fd, line)
            if written != len(line):  # pragma: no cover - disk full
                raise OSError(f"short write to {self.path}")
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        return record

    def records(self) -> list[dict]:
        """All records from every ``*.jsonl`` under runs/, skipping torn lines."""
        out: list[dict] = []
        for path in sorted(self.runs_dir.glob("*.jsonl")):
            for line in path.read_text().splitlines():
                if not line.strip():
                    continue
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return out

    def dataframe(self, records: Iterable[dict] | None = None):
        """Records flattened into a pandas DataFrame (``metrics.test_acc``, ``config.model.name`` ...)."""
        import pandas as pd

        rows = list(self.records() if records is None else records)
        return pd.json_normalize(rows) if rows else pd.DataFrame()
