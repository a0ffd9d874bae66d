"""Each failure the issue lists is provoked and ends as described: NaN loss -> failed record and the
multirun goes on; OOM -> a message naming trainer.batch_size; corrupt checkpoint -> one clear error and
no crash loop; W&B errors never kill a run."""
from __future__ import annotations

import sys
import types

import pytest
import torch
from torch import nn

from experiments import cli
from experiments.data.bundle import TensorLoader
from experiments.pipeline import RunFailed, dense_cache_path, run
from experiments.results import ResultsStore
from experiments.train import Trainer, create_schedule
from experiments.train.trainer import TrainingOutOfMemory

DENSE = ["method=dense", "experiment_name=failures"]


def test_nan_loss_is_a_failed_record_and_the_multirun_goes_on(tiny_cfg, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_is_multirun", lambda: True)
    bad = tiny_cfg(*DENSE, "trainer.pretrain.optimizer.lr=1e30", "trainer.max_steps_per_epoch=4")
    good = tiny_cfg(*DENSE)
    assert cli.main_entry(bad) is None                      # the sweep is not stopped...
    acc = cli.main_entry(good)                              # ...and the next job runs
    assert "error: NonFiniteLoss: non-finite training loss in pretrain epoch 1" in capsys.readouterr().err
    failed, ok = ResultsStore(tmp_path).records()
    assert failed["status"] == "failed" and "lower trainer.pretrain.optimizer.lr (now 1e+30)" in failed["error"]
    assert "\n" not in failed["error"]
    assert ok["status"] == "ok" and ok["metrics"]["test_acc"] == acc


def test_divergence_hint_names_the_methods_lr_key(tiny_cfg, tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "_is_multirun", lambda: True)
    cli.main_entry(tiny_cfg("method=magnitude", "sparsity.target=0.5", "method.lr=1e30", "trainer.max_steps_per_epoch=30", "trainer.batch_size=16",
                            "experiment_name=failures"))
    failed = [r for r in ResultsStore(tmp_path).records() if r["status"] == "failed"][-1]
    assert "in finetune epoch 1 step" in failed["error"] and "lower method.lr (now 1e+30)" in failed["error"]


def test_single_run_failure_exits_1(tiny_cfg, monkeypatch):
    monkeypatch.setattr(cli, "_is_multirun", lambda: False)
    with pytest.raises(SystemExit) as exc:
        cli.main_entry(tiny_cfg(*DENSE, "trainer.pretrain.optimizer.lr=1e30", "trainer.max_steps_per_epoch=4"))
    assert exc.value.code == 1


class _OOMNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


def test_out_of_memory_in_training_names_the_batch_size():
    x, y = torch.zeros(64, 1, 2, 2, dtype=torch.uint8), torch.zeros(64, dtype=torch.long)
    loader = TensorLoader(x, y, 32, torch.tensor([0.5]), torch.tensor([0.25]), shuffle=True, drop_last=True)
    trainer = Trainer(_OOMNet(), loader, {}, create_schedule(1, 0.1), {"name": "sgd", "lr": 0.1}, progress=False)
    with pytest.raises(TrainingOutOfMemory, match=r"trainer.batch_size=32; lower it \(e.g. trainer.batch_size=16\)"):
        trainer.fit()


def test_out_of_memory_elsewhere_is_a_one_line_failed_record(tiny_cfg, tmp_path, monkeypatch):
    from experiments.context import StageContext

    def oom(self, model, split="test"):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB\nmore lines")
    monkeypatch.setattr(StageContext, "evaluate", oom)
    with pytest.raises(RunFailed, match="out of memory.*trainer.batch_size=128 or trainer.eval_batch_size=1000"):
        run(tiny_cfg(*DENSE))
    (record,) = ResultsStore(tmp_path).records()
    assert record["status"] == "failed" and record["error"].startswith("TrainingOutOfMemory")


def test_corrupt_dense_cache_is_one_clear_error_then_retrains(tiny_cfg, tmp_path):
    from experiments.context import StageContext

    cfg = tiny_cfg(*DENSE)
    run(cfg)
    ctx = StageContext(cfg=cfg, data=None, device=torch.device("cpu"), tracker=None, run_id="x", results_dir=tmp_path)
    cache = dense_cache_path(ctx)
    cache.write_bytes(cache.read_bytes()[:100])             # truncated file
    with pytest.raises(RunFailed, match=r"CheckpointError: dense cache .* is corrupt; moved to .*\.corrupt"):
        run(cfg)
    assert cache.with_name(cache.name + ".corrupt").exists()
    assert run(cfg)["status"] == "ok"                        # the next run retrains: no crash loop
    assert [r["status"] for r in ResultsStore(tmp_path).records()] == ["ok", "failed", "ok"]


class _BrokenRun:
    dir = "/nonexistent"

    def __init__(self):
        self.summary = self

    def __setitem__(self, key, value):
        raise OSError("wandb summary write failed")

    def log(self, *args, **kwargs):
        raise ConnectionError("wandb backend went away")

    def finish(self, *args, **kwargs):
        raise RuntimeError("wandb finish failed")


@pytest.mark.parametrize("init_fails", [True, False])
def test_wandb_errors_never_kill_a_run(tiny_cfg, monkeypatch, caplog, init_fails):
    calls = []

    def init(**kwargs):
        calls.append(kwargs["mode"])
        if init_fails:
            raise RuntimeError("wandb.init: network unreachable")
        return _BrokenRun()
    fake = types.ModuleType("wandb")
    fake.init, fake.Table, fake.Image = init, object, object
    monkeypatch.setitem(sys.modules, "wandb", fake)
    record = run(tiny_cfg(*DENSE, "logger=wandb", "logger.mode=online"))
    assert record["status"] == "ok" and record["metrics"]["test_acc"] > 0
    assert calls == (["online", "offline"] if init_fails else ["online"])   # online falls back to offline
    assert "wandb" in caplog.text


@pytest.mark.parametrize("method, line, last", [
    ("BuggyMethod", '{}["missing"]', "error: KeyError: 'missing'"),
    ("ValueBugMethod", 'float("not a number")', "error: ValueError: could not convert string to float: 'not a number'"),
])
def test_a_genuine_bug_keeps_its_traceback_and_ends_with_the_one_line_summary(tiny_cfg, monkeypatch, capsys,
                                                                              method, line, last):
    monkeypatch.setattr(cli, "_is_multirun", lambda: True)
    cli.main_entry(tiny_cfg("method=dense", f"method._target_=ddp_mask_method.{method}", "experiment_name=failures"))
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("Traceback") and any(line in text for text in err)   # the faulty source line
    assert err[-1] == last


def test_a_user_error_has_no_traceback(tiny_cfg, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_is_multirun", lambda: True)
    cli.main_entry(tiny_cfg("method=dense", "dataset.test_subset=100000000", "experiment_name=failures"))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ConfigError: dataset.test_subset=100000000 is larger")
