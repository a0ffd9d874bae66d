"""The results store: torn lines are repaired, failed writes undone, unreadable lines skipped with a warning."""
import errno
import json
import os

import pytest

from experiments import results as results_mod
from experiments.results import ResultsStore, StoreWriteError, study_file_name


def rec(i, **kw):
    return {"run_id": f"r{i}", "experiment": "e", "status": "ok", "metrics": {"test_acc": float(i)}, **kw}


def test_torn_last_line_then_append_keeps_both_records(tmp_path):
    store = ResultsStore(tmp_path)
    store.append(rec(1))
    with open(store.path, "ab") as f:      # a killed writer left half a record, no newline
        f.write(b'{"run_id": "torn", "status": "o')
    with pytest.warns(RuntimeWarning, match="torn"):
        store.append(rec(2))
    with pytest.warns(RuntimeWarning, match="skipped 1 unreadable line"):
        ids = [r["run_id"] for r in store.records()]
    assert ids == ["r1", "r2"]


def test_short_write_leaves_the_file_unchanged_and_says_disk_full(tmp_path, monkeypatch):
    store = ResultsStore(tmp_path)
    store.append(rec(1))
    before = store.path.read_bytes()
    real_write = os.write

    def short(fd, data):   # the disk fills after half the line
        return real_write(fd, data[: len(data) // 2])
    monkeypatch.setattr(results_mod.os, "write", short)
    with pytest.raises(StoreWriteError, match="disk full") as err:
        store.append(rec(2))
    assert str(tmp_path) in str(err.value) and "\n" not in str(err.value)
    monkeypatch.setattr(results_mod.os, "write", real_write)
    assert store.path.read_bytes() == before


def test_failed_write_error_names_the_cause(tmp_path, monkeypatch):
    store = ResultsStore(tmp_path)

    def fail(fd, data):
        raise OSError(errno.EIO, "Input/output error")
    monkeypatch.setattr(results_mod.os, "write", fail)
    with pytest.raises(StoreWriteError, match="Input/output error"):
        store.append(rec(1))
    assert store.path.read_bytes() == b""


def test_garbage_bytes_are_skipped_with_one_warning(tmp_path):
    store = ResultsStore(tmp_path)
    store.append(rec(1))
    with open(store.path, "ab") as f:
        f.write(b"\xff\xfe\x00garbage\n[1, 2]\n")
    store.append(rec(2))
    with pytest.warns(RuntimeWarning, match=r"skipped 2 unreadable line\(s\) \(line 2, 3\)"):
        assert [r["run_id"] for r in store.records()] == ["r1", "r2"]


def test_study_records_go_to_one_file_per_experiment_and_are_read_back(tmp_path):
    store = ResultsStore(tmp_path)
    store.append(rec(1, experiment="study/h1_lenet300", run_key="k1"), study=True)
    store.append(rec(2))
    path = tmp_path / "store" / "study__h1_lenet300.jsonl"
    assert study_file_name("study/h1_lenet300") == path.name
    assert json.loads(path.read_text())["run_key"] == "k1"
    assert {r["run_id"] for r in store.records()} == {"r1", "r2"}
    assert store.done("k1")["run_id"] == "r1" and store.done("nope") is None


def test_without_flock_the_store_falls_back_to_lockf_with_a_warning(tmp_path, monkeypatch):
    import fcntl

    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")
    monkeypatch.setattr(fcntl, "flock", no_flock)
    store = ResultsStore(tmp_path)
    with pytest.warns(RuntimeWarning, match="flock is not supported here; using lockf"):
        store.append(rec(1))
    assert [r["run_id"] for r in store.records()] == ["r1"]


def test_a_full_disk_while_saving_a_checkpoint_is_one_line_naming_the_path(tmp_path, monkeypatch):
    import torch

    from experiments import checkpoint

    def full(obj, fh):
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0")
    monkeypatch.setattr(checkpoint.torch, "save", full)
    with pytest.raises(checkpoint.CheckpointWriteError) as err:
        checkpoint.atomic_save({"a": torch.zeros(1)}, tmp_path / "m.pt")
    msg = str(err.value)
    assert str(tmp_path / "m.pt") in msg and "results_dir=" in msg and "\n" not in msg
    assert list(tmp_path.iterdir()) == []          # no temp file left behind
