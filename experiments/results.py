"""Append-only results store: one JSON object per finished (or failed) run.

Two places under ``<results_dir>``:
- ``runs/records.jsonl``: every ordinary run (git-ignored scratch);
- ``store/<experiment>.jsonl``: the study's records (``store=study``), one file per experiment, small JSON
  lines committed to git so tables rebuild on a fresh clone and a long grid continues across machines.

Readers see both. Each record is one ``os.write`` of a whole line on an ``O_APPEND`` descriptor under an
exclusive lock, so parallel jobs never interleave. What a crash can leave: a SIGKILL or power loss in the
middle of that write can leave a *torn* last line (a prefix without its newline). It is harmless: the next
append, under the lock, first ends the torn line with a newline (and warns), so the new record is never glued
to it, and readers skip the torn line with a warning naming the file and line. A failed or short write (disk
full) is truncated back to the file's previous length and reported in one line.
"""
from __future__ import annotations

import errno
import fcntl
import json
import logging
import math
import os
import warnings
from pathlib import Path
from typing import Any, Iterable

from .errors import StoreWriteError

log = logging.getLogger(__name__)

RECORD_FILE = "records.jsonl"
STUDY_DIR = "store"

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


def study_file_name(experiment: str) -> str:
    """``hyperflows/h1_lenet300`` -> ``hyperflows__h1_lenet300.jsonl`` (one file per experiment)."""
    return str(experiment).replace("/", "__") + ".jsonl"


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


def _lock(fd: int) -> None:
    """Exclusive lock: ``flock``, else (filesystems without it) POSIX ``lockf`` with a warning."""

    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError as exc:
        if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
        warnings.warn("results store: flock is not supported here; using lockf", RuntimeWarning, stacklevel=3)
        fcntl.lockf(fd, fcntl.LOCK_EX)


def _unlock(fd: int) -> None:

    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    except OSError:
        fcntl.lockf(fd, fcntl.LOCK_UN)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def append_line(path: Path, line: bytes) -> None:
    """Append one whole line under the lock; repair a torn last line first; undo a failed write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        _lock(fd)
        size = os.fstat(fd).st_size
        if size > 0 and os.pread(fd, 1, size - 1) != b"\n":
            warnings.warn(f"{path}: the last line was torn (no newline; a killed write?); it is kept as an "
                          f"unreadable line and the new record starts on its own line", RuntimeWarning,
                          stacklevel=3)
            line = b"\n" + line
        try:
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(errno.ENOSPC, f"short write ({written} of {len(line)} bytes)")
            os.fsync(fd)
        except OSError as exc:
            try:
                os.ftruncate(fd, size)
            except OSError:
                pass
            cause = "disk full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
            raise StoreWriteError(exc.errno, f"could not write a record to {path} ({cause}); the file is "
                                  f"unchanged, free space or pass results_dir=<another directory> and re-run") from None
        finally:
            _unlock(fd)
    finally:
        os.close(fd)
    if created:
        _fsync_dir(path.parent)


def read_records(path: Path) -> list[dict]:
    """The records of one ``.jsonl`` file; unreadable lines (torn, garbage bytes) are skipped with one warning."""
    out, bad = [], []
    for i, raw in enumerate(path.read_bytes().split(b"\n"), 1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            bad.append(i)
            continue
        if isinstance(rec, dict):
            out.append(rec)
        else:
            bad.append(i)
    if bad:
        shown = ", ".join(map(str, bad[:5])) + (" ..." if len(bad) > 5 else "")
        warnings.warn(f"{path}: skipped {len(bad)} unreadable line(s) (line {shown})", RuntimeWarning, stacklevel=2)
    return out


class ResultsStore:
    """Reads and appends run records under ``<results_dir>/runs`` and ``<results_dir>/store``."""

    def __init__(self, results_dir: str | os.PathLike):
        self.root = Path(results_dir)
        self.runs_dir = self.root / "runs"
        self.study_dir = self.root / STUDY_DIR

    @property
    def path(self) -> Path:
        return self.runs_dir / RECORD_FILE

    def path_for(self, record: dict, study: bool = False) -> Path:
        """Where ``record`` goes: its experiment's study file, or ``runs/records.jsonl``."""
        return self.study_dir / study_file_name(record.get("experiment") or "main") if study else self.path

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

    def append(self, record: dict, study: bool = False) -> dict:
        record = complete_record(record)
        append_line(self.path_for(record, study), (json.dumps(record, sort_keys=False) + "\n").encode())
        return record

    def files(self, study_only: bool = False) -> list[Path]:
        runs = [] if study_only else sorted(self.runs_dir.glob("*.jsonl"))
        return runs + sorted(self.study_dir.glob("*.jsonl"))

    def records(self, study_only: bool = False) -> list[dict]:
        """All records of every ``*.jsonl`` under runs/ and store/ (``study_only``: store/ alone, what a fresh
        clone has), skipping (and reporting) torn lines."""
        out: list[dict] = []
        for path in self.files(study_only):
            out.extend(read_records(path))
        return out

    def done_by_key(self) -> dict[str, dict]:
        """run key -> the last ok record with that key."""
        return {r["run_key"]: r for r in self.records() if r.get("status") == "ok" and r.get("run_key")}

    def done(self, run_key: str) -> dict | None:
        """The last ok record of run key ``run_key`` (``skip_done``), or None."""
        return self.done_by_key().get(run_key)

    def dataframe(self, records: Iterable[dict] | None = None):
        """Records flattened into a pandas DataFrame (``metrics.test_acc``, ``config.model.name`` ...)."""
        import pandas as pd

        rows = list(self.records() if records is None else records)
        return pd.json_normalize(rows) if rows else pd.DataFrame()
