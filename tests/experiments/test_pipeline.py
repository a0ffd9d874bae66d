"""End-to-end pipeline behaviour: records, dense cache, and one-line user errors."""
from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT, TINY, compose_cfg
from experiments.pipeline import RunFailed, run
from experiments.results import METRIC_KEYS, ResultsStore


def test_dense_run_writes_contract_record_and_reuses_cache(tmp_path):
    cfg = compose_cfg(TINY + ["method=dense"], tmp_path)
    first = run(cfg)
    assert first["status"] == "ok" and first["error"] is None
    assert set(METRIC_KEYS) <= set(first["metrics"])
    assert first["metrics"]["sparsity"] == pytest.approx(0.0)
    assert first["metrics"]["test_acc"] == pytest.approx(first["metrics"]["dense_test_acc"])
    cache = first["checkpoints"]["dense"]
    mtime = __import__("os").path.getmtime(cache)
    second = run(compose_cfg(TINY + ["method=dense"], tmp_path))
    assert second["checkpoints"]["dense"] == cache and __import__("os").path.getmtime(cache) == mtime
    assert second["metrics"]["dense_test_acc"] == first["metrics"]["dense_test_acc"]
    assert len(ResultsStore(tmp_path).records()) == 2


def test_failed_run_is_recorded_with_one_line_error(tmp_path):
    cfg = compose_cfg(TINY + ["method=dense", "dataset=cifar10", f"data_root={tmp_path}/none"], tmp_path)
    cfg.dataset.root = str(tmp_path / "none")
    with pytest.raises(RunFailed) as info:
        run(cfg)
    assert "cifar10 not found" in str(info.value)
    (rec,) = ResultsStore(tmp_path).records()
    assert rec["status"] == "failed" and "\n" not in rec["error"] and "cifar10" in rec["error"]


def _cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "run.py", *TINY, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})


def test_cli_errors_are_one_clear_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    cases = [
        (["sparsity.target=1.5"], "error: ConfigError: sparsity.target=1.5"),
        ([f"results_dir={blocker}/sub"], "is not writable"),
        (["model=nope"], "error: model=nope is not an option of model; choices: lenet300"),
    ]
    for args, needle in cases:
        extra = [] if args[0].startswith("results_dir") else [f"results_dir={tmp_path}/r"]
        out = _cli(*args, "method=dense", *extra)
        assert out.returncode != 0
        assert needle in out.stderr, out.stderr[-2000:]
    assert not (blocker.parent / "sub").exists()


def test_val_acc_is_the_final_models_after_finalize(tmp_path, monkeypatch):
    """The study's LR selection reads ``val_acc``: it must be the validation accuracy of the model that is reported
    (after ``finalize``: a snap or a physical removal may change it), not the last training epoch's."""
    import torch

    from experiments.context import StageContext
    from hyperflows.magnitude import OneShotMagnitude

    rec = run(compose_cfg(TINY + ["method=magnitude"], tmp_path))["metrics"]
    assert rec["val_acc"] == pytest.approx(rec["val_acc_train_end"])   # finalize changes nothing: same number

    finals, seen = [], []
    real_finalize = OneShotMagnitude.finalize

    def zeroed(self, model):   # a finalize that changes the function: then every weight and bias to 0
        model = real_finalize(self, model)
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()
        finals.append(model)
        return model
    real = StageContext.evaluate
    def spy(self, model, split="test"):
        out = real(self, model, split)
        seen.append((any(model is f for f in finals), split, out["acc"]))
        return out
    monkeypatch.setattr(OneShotMagnitude, "finalize", zeroed)
    monkeypatch.setattr(StageContext, "evaluate", spy)
    rec = run(compose_cfg(TINY + ["method=magnitude"], tmp_path))["metrics"]
    (acc,) = [a for is_final, split, a in seen if is_final and split == "val"]
    assert rec["val_acc"] == acc != rec["val_acc_train_end"]
