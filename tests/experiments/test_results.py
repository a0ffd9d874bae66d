import json
import multiprocessing as mp

from experiments.results import METRIC_KEYS, REQUIRED_KEYS, ResultsStore


def _writer(root, start, n):
    store = ResultsStore(root)
    for i in range(start, start + n):
        store.append({"run_id": f"r{i}", "status": "ok", "metrics": {"test_acc": float(i)}, "pad": "x" * 5000})


def test_parallel_appends_keep_every_line_intact(tmp_path):
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(tmp_path, k * 50, 50)) for k in range(4)]
    [p.start() for p in procs]
    [p.join() for p in procs]
    lines = (tmp_path / "runs" / "records.jsonl").read_text().splitlines()
    assert len(lines) == 200
    ids = sorted(json.loads(line)["run_id"] for line in lines)  # every line parses
    assert ids == sorted(f"r{i}" for i in range(200))


def test_record_has_contract_keys_and_torn_lines_are_skipped(tmp_path):
    store = ResultsStore(tmp_path)
    rec = store.append({"run_id": "a", "status": "ok", "metrics": {"test_acc": float("nan")}})
    assert all(k in rec for k in REQUIRED_KEYS)
    assert all(k in rec["metrics"] for k in METRIC_KEYS)
    assert rec["metrics"]["test_acc"] is None  # NaN is not JSON
    with open(store.path, "a") as fh:
        fh.write('{"run_id": "torn", "sta')
    assert [r["run_id"] for r in store.records()] == ["a"]
    df = store.dataframe()
    assert "metrics.test_acc" in df.columns


def test_unwritable_results_dir_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    store = ResultsStore(blocker / "sub")
    try:
        store.check_writable()
    except PermissionError as exc:
        msg = str(exc)
        assert "results_dir=" in msg and "\n" not in msg
    else:
        raise AssertionError("expected PermissionError")
