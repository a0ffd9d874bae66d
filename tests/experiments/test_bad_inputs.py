"""Bad inputs through the real CLI (``python run.py ...``): each ends with a non-zero exit, one ``error:`` line
naming the key or path, no traceback, no "ok" record and no torn line in the store."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import ROOT
from experiments.results import ResultsStore

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", "HYDRA_FULL_ERROR": "0"}
FAST = ["logger=disabled", "trainer.epochs=1", "trainer.max_steps_per_epoch=1", "trainer.progress=false",
        "dataset.train_subset=256", "dataset.val_size=128", "dataset.test_subset=256", "measure.latency_repeats=0"]


def cli(tmp_path, *args, results_dir=True):
    cmd = [sys.executable, "run.py", *FAST, *args] + ([f"results_dir={tmp_path / 'r'}"] if results_dir else [])
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=180, env=ENV)


@pytest.fixture
def garbage(tmp_path):
    path = tmp_path / "garbage.pt"
    path.write_bytes(os.urandom(256))
    return path


CASES = {   # id -> (overrides, text the error line must contain, exit code)
    "export format": (["measure.export=tflite"], "measure.export=tflite is not one of", 1),
    "speed-up batches": (["measure.speedup_batches=[1,0]"], "measure.speedup_batches=[1, 0] must be batch sizes", 1),
    "speed-up forms": (["measure.speedup_forms=[eager,tensorrt]"], "measure.speedup_forms=['eager', 'tensorrt'] must be", 1),
    "train_subset=-1": (["dataset.train_subset=-1"], "dataset.train_subset=-1", 1),
    "train_subset=0": (["dataset.train_subset=0"], "dataset.train_subset=0", 1),
    "test_subset=0": (["dataset.test_subset=0"], "dataset.test_subset=0", 1),
    "train_subset>split": (["dataset.train_subset=10000000"], "dataset.train_subset=10000000 is larger", 1),
    "stages as a string": (["stages=pretrain"], "stages=[pretrain]", 1),
    "negative method LR": (["method.weights.lr_prune_start=-1"], "method.weights.lr_prune_start=-1", 1),
    "infinite method.lr": (["method.lr=inf"], "method.lr=inf", 1),
    "zero recipe LR": (["trainer.finetune.optimizer.lr=0"], "trainer.finetune.optimizer.lr=0", 1),
    "model=nope": (["model=nope"], "model=nope is not an option of model", 2),
    "scorer=nope": (["scorer=agff"], "closest: agf", 2),
    "method=nope": (["method=hyperflow"], "closest: hyperflows", 2),
    "routing=nope": (["routing=nope"], "routing=nope is not an option of routing", 2),
    "experiment=nope": (["experiment=agf/stress"], "choices: agf/phase_transition", 2),
    "missing checkpoint": (["model.checkpoint=/nonexistent/w.pt"], "model.checkpoint=/nonexistent/w.pt", 1),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_ends_in_one_line(tmp_path, case):
    overrides, needle, code = CASES[case]
    out = cli(tmp_path, *overrides)
    assert out.returncode == code, out.stderr[-2000:]
    text = out.stdout + out.stderr
    assert "Traceback" not in text
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and needle in last, last
    records = ResultsStore(tmp_path / "r").records()
    assert not [r for r in records if r["status"] == "ok"]


def test_garbage_checkpoint_is_one_line(tmp_path, garbage):
    out = cli(tmp_path, f"model.checkpoint={garbage}")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert f"model.checkpoint={garbage} is not a readable torch checkpoint" in out.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("key", ["results_dir", "hydra.run.dir", "data_root"])
def test_a_file_where_a_directory_belongs_is_one_line(tmp_path, key):
    afile = tmp_path / "afile"
    afile.write_text("x")
    target = afile if key == "data_root" else afile / "sub"
    out = cli(tmp_path, f"{key}={target}", results_dir=key != "results_dir")
    assert out.returncode != 0 and "Traceback" not in out.stdout + out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and f"{key}={target}" in last, last


def test_unknown_plus_key_warns_and_does_not_change_the_run_key(tmp_path):
    plain = cli(tmp_path, "method=dense", "stages=[evaluate]")
    extra = cli(tmp_path, "method=dense", "stages=[evaluate]", "+foo=1")
    assert plain.returncode == 0 and extra.returncode == 0, extra.stderr[-2000:]
    assert "ignoring foo: no component reads it" in extra.stdout + extra.stderr
    a, b = ResultsStore(tmp_path / "r").records()
    assert a["run_key"] == b["run_key"] and "foo" not in b["config"]


def test_reports_survive_garbage_bytes_in_the_store(tmp_path):
    store = ResultsStore(tmp_path)
    store.append({"run_id": "a", "experiment": "e", "status": "ok", "seed": 0,
                  "config": {"method": {"name": "dense"}, "model": {"name": "lenet300"}, "sparsity": {"target": 0.9}},
                  "metrics": {"test_acc": 90.0, "sparsity": 0.0}})
    with open(store.path, "ab") as f:
        f.write(b"\x80\x81garbage\xff\n")
    out = subprocess.run([sys.executable, "-m", "flowprune", "table", "--results-dir", str(tmp_path), "--experiment",
                          "e", "--rows", "method", "--cols", "target", "--name", "t"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, env=ENV)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "skipped 1 unreadable line" in out.stderr and (tmp_path / "tables" / "t.md").exists()


def test_results_dir_set_by_a_preset_is_checked_before_hydra_starts(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    conf = tmp_path / "userconf" / "experiment"
    conf.mkdir(parents=True)
    (conf / "mine.yaml").write_text(f"# @package _global_\nexperiment_name: mine\nresults_dir: {afile}/sub\n")
    out = cli(tmp_path, f"hydra.searchpath=[file://{tmp_path / 'userconf'}]", "experiment=mine", results_dir=False)
    assert out.returncode == 2 and "Traceback" not in out.stdout + out.stderr
    assert f"results_dir={afile}/sub is not writable" in out.stderr.strip().splitlines()[-1]


def test_a_run_elsewhere_writes_nothing_into_the_checkout(tmp_path):
    def status():
        out = subprocess.run(["git", "status", "--ignored", "--porcelain"], cwd=ROOT, capture_output=True, text=True)
        return {line for line in out.stdout.splitlines() if "__pycache__" not in line and ".pytest_cache" not in line}
    if subprocess.run(["git", "rev-parse"], cwd=ROOT, capture_output=True).returncode != 0:
        pytest.skip("not a git checkout")
    before = status()
    out = cli(tmp_path, "method=dense", "stages=[pretrain,evaluate]", "logger=wandb")
    assert out.returncode == 0, out.stderr[-2000:]
    assert status() == before


def test_failed_runs_leave_no_torn_line(tmp_path):
    cli(tmp_path, "dataset.train_subset=0")
    for path in (tmp_path / "r" / "runs").glob("*.jsonl"):
        raw = path.read_bytes()
        assert raw.endswith(b"\n") and all(__import__("json").loads(l) for l in raw.splitlines())
