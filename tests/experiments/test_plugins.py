"""A user's own model and dataset from outside the project (``examples/plugin`` copied to a temporary
directory): ``PYTHONPATH`` + ``hydra.searchpath`` are enough to run AGF's structured pruning and Hyperflows."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from conftest import ROOT
from experiments.checkpoint import load_model
from experiments.config_check import ConfigError, import_target

FAST = ["logger=disabled", "trainer.epochs=1", "trainer.max_steps_per_epoch=4", "trainer.progress=false",
        "measure.latency_repeats=0", "measure.dense_latency=false", "model=tiny_cnn", "dataset=stripes"]


@pytest.fixture
def plugin(tmp_path):
    """The example plug-in, outside the project tree, and a run command that sees it."""
    outside = tmp_path / "user"
    shutil.copytree(ROOT / "examples" / "plugin", outside)
    assert not str(outside).startswith(str(ROOT))
    env = {**os.environ, "PYTHONPATH": str(outside), "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}

    def run(*overrides: str) -> dict:
        results = tmp_path / "results"
        cmd = [sys.executable, "run.py", f"hydra.searchpath=[file://{outside / 'conf'}]", *FAST, *overrides,
               f"results_dir={results}"]
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
        assert out.returncode == 0, out.stderr[-3000:]
        lines = [json.loads(x) for f in sorted((results / "runs").glob("*.jsonl")) for x in f.read_text().splitlines()]
        return lines[-1]

    sys.path.insert(0, str(outside))
    yield run
    sys.path.remove(str(outside))
    for name in [m for m in sys.modules if m == "myplug" or m.startswith("myplug.")]:
        del sys.modules[name]


def tiny_cnn_params(width: int, in_channels: int = 1, num_classes: int = 4) -> int:
    """Brute-force parameter count of examples/plugin's tiny_cnn (no conv bias; BN weight+bias)."""
    return (in_channels * width * 9 + 2 * width + width * 2 * width * 9 + 2 * 2 * width
            + 2 * width * num_classes + num_classes)


def test_structured_agf_on_a_plugin_model_and_dataset(plugin):
    rec = plugin("method=structured", "scorer=agf", "sparsity.target=0.5")
    assert rec["status"] == "ok"
    assert rec["config"]["model"]["_target_"] == "myplug.nets.tiny_cnn"
    m = rec["metrics"]
    assert m["dense_params"] == tiny_cnn_params(8)
    # the only internal layer (the second conv, 16 channels) loses half its channels: 8 kept
    final, _ = load_model(rec["checkpoints"]["final"])       # rebuilt through the plug-in's builder
    assert final[3].out_channels == 8 and final[-1].in_features == 8
    assert m["params_total"] == sum(p.numel() for p in final.parameters())
    x = torch.randn(2, 1, 16, 16)
    assert final.eval()(x).shape == (2, 4)


def test_hyperflows_on_a_plugin_model_and_dataset(plugin):
    rec = plugin("method=hyperflows", "sparsity.target=0.5")
    assert rec["status"] == "ok"
    assert rec["config"]["dataset"]["_target_"] == "myplug.data.stripes"
    assert rec["metrics"]["params_total"] == tiny_cnn_params(8)       # unstructured: shapes unchanged
    assert rec["metrics"]["params_nonzero"] < rec["metrics"]["params_total"]


def test_a_target_that_does_not_import_is_one_config_line():
    with pytest.raises(ConfigError, match=r"model._target_=no_such_pkg.nets.fn: cannot import 'no_such_pkg.nets'"):
        import_target("no_such_pkg.nets.fn", "model._target_")
    with pytest.raises(ConfigError, match=r"no callable 'nope' in module 'experiments.stats'"):
        import_target("experiments.stats.nope", "dataset._target_")
