"""A Hydra multirun over sparsity writes one record per job, and the table script turns them into one table."""
from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT, TINY
from experiments.results import ResultsStore


def test_multirun_over_sparsity_writes_three_records_and_one_table(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "run.py", "-m", "sparsity=90,95,98", "method=magnitude", "experiment_name=sweep_test",
           f"results_dir={tmp_path}", *TINY]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    records = [r for r in ResultsStore(tmp_path).records() if r["experiment"] == "sweep_test"]
    assert sorted(r["config"]["sparsity"]["target"] for r in records) == [0.9, 0.95, 0.98]
    assert all(r["status"] == "ok" for r in records)
    # one dense model for the whole sweep: the second and third runs reuse the cache
    assert len({r["checkpoints"]["dense"] for r in records}) == 1
    for r in records:  # one-shot magnitude reaches its target exactly
        assert abs(r["metrics"]["sparsity"] - r["config"]["sparsity"]["target"]) < 0.005
    table = subprocess.run([sys.executable, "-m", "flowprune", "table", "--results-dir", str(tmp_path),
                            "--experiment", "sweep_test", "--rows", "method", "--cols", "sparsity",
                            "--name", "sweep_test"], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert table.returncode == 0, table.stderr[-2000:]
    md = (tmp_path / "tables" / "sweep_test.md").read_text()
    header, _, row = md.strip().splitlines()[-3:]
    assert header == "| method | 90% | 95% | 98% |" and row.startswith("| magnitude | ")
    assert (tmp_path / "tables" / "sweep_test.csv").exists() and (tmp_path / "tables" / "sweep_test.tex").exists()
