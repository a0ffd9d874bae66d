"""The ``flowprune`` command: each subcommand reaches the module that owns it, user errors exit 2 with one line."""
from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT
from experiments.results import ResultsStore
from flowprune import cli


def record(run_id: str, method: str, seed: int, acc: float) -> dict:
    return {"run_id": run_id, "experiment": "e", "status": "ok", "seed": seed,
            "config": {"method": {"name": method}, "model": {"name": "lenet300"}, "sparsity": {"target": 0.9}},
            "metrics": {"test_acc": acc, "sparsity": 0.9}}


@pytest.mark.parametrize("argv, message", [
    ([], "needs a command"),
    (["nope"], "unknown command 'nope'"),
    (["report"], "needs a name: one of claims"),
    (["report", "nope"], "unknown report 'nope'; choose one of claims"),
    (["bench", "nope"], "unknown bench 'nope'; choose one of agf, gpu"),
])
def test_user_errors_exit_2_with_one_last_line(argv, message, capsys):
    assert cli.main(argv) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last


def test_every_listed_report_and_bench_is_a_module_with_main():
    import importlib

    for package, names in (("flowprune.reports", cli.REPORTS), ("flowprune.bench", cli.BENCHES)):
        for name in names:
            assert callable(importlib.import_module(f"{package}.{name}").main), f"{package}.{name}"


def test_the_2_4_bench_on_a_machine_without_a_capable_gpu_is_one_error_line():
    import torch

    from flowprune.bench import semi

    if torch.cuda.is_available() and torch.cuda.get_device_capability()[0] >= 8:
        pytest.skip("a GPU with sparse tensor cores is here: the bench would run")
    with pytest.raises(SystemExit, match=r"^error: flowprune bench semi needs a CUDA GPU .*flowprune bench sparse$"):
        semi.main([])


def test_table_writes_under_out_tables_like_the_module(tmp_path):
    store = ResultsStore(tmp_path)
    for i, (m, acc) in enumerate([("magnitude", 88.0), ("magnitude", 90.0), ("gmp", 89.0)]):
        store.append(record(f"r{i}", m, i, acc))
    assert cli.main(["table", "--results-dir", str(tmp_path), "--experiment", "e", "--name", "t",
                     "--out", str(tmp_path / "o")]) == 0
    md = (tmp_path / "o" / "tables" / "t.md").read_text()
    assert "| magnitude | 89.00 ± 1.41 (2) [s=0.900] |" in md   # mean and sample std of 88 and 90


def test_run_is_run_py_with_its_preflight():
    """``flowprune run`` is ``python run.py``: a wrong group option is caught before Hydra, one line, exit 2."""
    out = subprocess.run([sys.executable, "-m", "flowprune", "run", "method=nope"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("error: method=nope is not an option of method")
