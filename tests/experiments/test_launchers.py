"""Launcher presets: every field matches the plugin's schema (``basic`` is Hydra's built-in one), conf/local can switch the launcher, and a
2-job joblib multirun writes 2 intact records in 2 separate job folders."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import get_class

from conftest import CONF, ROOT, TINY
from experiments.results import ResultsStore

pytestmark = pytest.mark.filterwarnings(r"ignore:\s*'hydra/launcher/:UserWarning")  # Hydra's same-name schema check

SCHEMAS = {
    "joblib": "hydra_plugins.hydra_joblib_launcher.config.JobLibLauncherConf",
    "submitit_slurm": "hydra_plugins.hydra_submitit_launcher.config.SlurmQueueConf",
    "submitit_local": "hydra_plugins.hydra_submitit_launcher.config.LocalQueueConf",
    "basic": "hydra._internal.core_plugins.basic_launcher.BasicLauncherConf",
}


def _launcher(conf_dir, *overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["method=dense", *overrides], return_hydra_config=True)
    return cfg.hydra.launcher


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_launcher_preset_matches_the_plugin_schema(name):
    launcher = _launcher(CONF, f"hydra/launcher={name}")
    schema = get_class(SCHEMAS[name])
    assert set(launcher.keys()) == {f.name for f in dataclasses.fields(schema)}
    assert get_class(launcher._target_)  # the launcher class imports
    if name == "submitit_slurm":
        assert launcher.gpus_per_node == 1 and launcher.max_num_timeout > 0 and launcher.signal_delay_s > 0


def test_untracked_local_config_switches_the_launcher(tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    (conf / "local").mkdir(exist_ok=True)
    (conf / "local" / "default.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /hydra/launcher: submitit_slurm\n"
        "hydra:\n  launcher:\n    partition: gpu\n    setup: [module load cuda]\n")
    launcher = _launcher(conf)
    assert launcher._target_.endswith("SlurmLauncher") and launcher.partition == "gpu"
    assert list(launcher.setup) == ["module load cuda"]


def test_joblib_two_job_multirun_writes_two_intact_records(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "run.py", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "method=dense",
           "seed=0,1", "experiment_name=joblib_test", f"results_dir={tmp_path}", *TINY]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = (tmp_path / "runs" / "records.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]                 # every line is one whole JSON object
    assert len(records) == 2 and records == ResultsStore(tmp_path).records()
    assert sorted(r["seed"] for r in records) == [0, 1] and all(r["status"] == "ok" for r in records)
    assert len({r["run_id"] for r in records}) == 2
    finals = {r["checkpoints"]["final"] for r in records}
    assert len(finals) == 2 and all(os.path.exists(p) for p in finals)
    sweep_dirs = list((tmp_path / "hydra" / "multirun").glob("*/*"))
    assert len(sweep_dirs) == 1 and sorted(p.name for p in sweep_dirs[0].iterdir() if p.is_dir()) == ["0", "1"]
