"""Checkpoint/resume: a run killed (SIGKILL) or preempted (SIGTERM) mid-training and re-run ends with
exactly the metrics and weights of an uninterrupted run (CPU)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import ROOT, TINY, compose_cfg
from experiments.checkpoint import CheckpointError, load_model
from experiments.resume import REQUEUE_EXIT_CODE, ResumeState, rng_state, run_key, set_rng_state, stage_seed
from experiments.results import ResultsStore

# dense pretraining + 6 fine-tune epochs of LeNet-300 on 2048 images: a few seconds, many checkpoints
RUN = ["method=dense", "method.finetune=true", "trainer.epochs=6", "trainer.progress=false",
       "dataset.train_subset=2048", "dataset.test_subset=512", "dataset.val_size=256", "logger=disabled",
       "measure.latency_repeats=0", "measure.dense_latency=false", "trainer.batch_size=64"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


# Hyperflows: flow parameters + their Adam state, scheduler γ/inertia, regrowth switch go through the checkpoint
RUN_HYPERFLOWS = ["method=hyperflows", "method.pruning_epochs=3", "method.flow_lr=0.02", *RUN[2:]]


def _cmd(results_dir: Path, run: list[str] = RUN) -> list[str]:
    return [sys.executable, "run.py", *run, f"results_dir={results_dir}"]


def _run(results_dir: Path, run: list[str] = RUN) -> subprocess.CompletedProcess:
    out = subprocess.run(_cmd(results_dir, run), cwd=ROOT, capture_output=True, text=True, timeout=300, env=ENV)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def _interrupt(results_dir: Path, sig: int, checkpoint_glob: str, run: list[str] = RUN) -> subprocess.Popen:
    """Start the run, send ``sig`` as soon as a fine-tune checkpoint exists, wait for the process."""
    log = open(results_dir.parent / f"{results_dir.name}.log", "w+")
    proc = subprocess.Popen(_cmd(results_dir, run), cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if list((results_dir / "checkpoints" / "resume").glob(f"*/{checkpoint_glob}")):
            proc.send_signal(sig)
            break
        time.sleep(0.005)
    proc.wait(timeout=120)
    log.seek(0)
    proc.stderr_text = log.read()
    log.close()
    return proc


def _final(results_dir: Path) -> tuple[dict, dict]:
    records = ResultsStore(results_dir).records()
    assert len(records) == 1 and records[0]["status"] == "ok", records
    model, _ = load_model(records[0]["checkpoints"]["final"])
    return records[0], model.state_dict()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    _run(root)
    return _final(root)


def _assert_same(reference, results_dir, run: list[str] = RUN):
    ref_record, ref_weights = reference
    record, weights = _final(results_dir)
    for key in ("test_acc", "test_acc_best", "dense_test_acc", "test_loss", "test_acc_at_best_val"):
        assert record["metrics"][key] == ref_record["metrics"][key], key
    for name, tensor in ref_weights.items():
        assert torch.equal(tensor, weights[name]), name
    assert not (results_dir / "checkpoints" / "resume" / run_key_dir(results_dir, run)).exists()
    return record


def run_key_dir(results_dir: Path, run: list[str] = RUN) -> str:
    return run_key(compose_cfg(run, results_dir))


def test_kill9_mid_finetune_then_rerun_equals_uninterrupted(reference, tmp_path):
    proc = _interrupt(tmp_path, signal.SIGKILL, "fit-finetune-finetune-0.pt")
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert ResultsStore(tmp_path).records() == []          # killed: nothing recorded
    ckpt = torch.load(next((tmp_path / "checkpoints" / "resume").glob("*/fit-finetune-finetune-0.pt")),
                      weights_only=True)
    assert 1 <= ckpt["epoch"] < 6                             # really mid fine-tuning
    _run(tmp_path)
    record = _assert_same(reference, tmp_path)
    assert record["attempts"] == 2


@pytest.mark.slow
def test_sigterm_checkpoints_mid_epoch_exits_for_requeue_then_resumes(reference, tmp_path):
    proc = _interrupt(tmp_path, signal.SIGTERM, "fit-finetune-finetune-0.pt")
    assert proc.returncode == REQUEUE_EXIT_CODE, proc.stderr_text[-2000:]
    assert "preempted" in proc.stderr_text
    ckpt = torch.load(next((tmp_path / "checkpoints" / "resume").glob("*/fit-finetune-finetune-0.pt")),
                      weights_only=True)
    assert ckpt["partial"] is not None and ckpt["partial"]["step"] >= 1   # stopped inside an epoch
    _run(tmp_path)
    _assert_same(reference, tmp_path)


def test_corrupt_resume_checkpoint_is_one_clear_error_then_starts_over(tmp_path):
    cfg = compose_cfg(TINY + ["method=dense", "method=dense"], tmp_path)
    state = ResumeState(tmp_path, run_key(cfg))
    state.begin("run-a", "t0")
    state.start_stage("finetune")
    path = state.dir / "fit-finetune-finetune-0.pt"
    path.write_bytes(b"not a checkpoint")

    class T:
        device = torch.device("cpu")
    state.start_stage("finetune")
    with pytest.raises(CheckpointError, match="corrupt.*moved to fit-finetune-finetune-0.pt.corrupt"):
        state.attach(T(), "finetune")
    assert not path.exists() and path.with_name(path.name + ".corrupt").exists()
    state.start_stage("finetune")
    state.attach(T(), "finetune")          # the next attempt restarts this fit instead of failing again


def test_run_key_ignores_paths_and_logger_but_not_the_recipe(tmp_path):
    a = run_key(compose_cfg(TINY + ["method=dense", "method=dense"], tmp_path))
    assert a == run_key(compose_cfg(TINY + ["method=dense", "logger=wandb", "trainer.progress=true"], tmp_path / "other"))
    assert a != run_key(compose_cfg(TINY + ["method=dense", "trainer.batch_size=64"], tmp_path))
    assert run_key(compose_cfg(TINY + ["method=dense", "resume_key=mine"], tmp_path)) == "mine"
    assert stage_seed(0, "prune") != stage_seed(0, "finetune") and stage_seed(0, "prune") == stage_seed(0, "prune")


def test_rng_state_roundtrip_restores_every_generator(tmp_path):
    import random

    import numpy as np
    from experiments.checkpoint import atomic_save, safe_load

    atomic_save(rng_state(), tmp_path / "rng.pt")
    expected = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(safe_load(tmp_path / "rng.pt"))           # weights_only load of the saved states
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], got[0]) and np.array_equal(expected[1], got[1]) and expected[2] == got[2]


def test_a_second_process_with_the_same_config_does_not_share_the_resume_folder(tmp_path):
    cfg = compose_cfg(TINY + ["method=dense"], tmp_path)
    first = ResumeState(tmp_path, run_key(cfg))
    assert first.begin("run-a", "t0") == ("run-a", "t0") and first.enabled
    code = ("import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR)\n"
            "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB); print('free')\n"
            "except OSError:\n    print('locked')")
    probe = lambda: subprocess.run([sys.executable, "-c", code, str(first.dir / "lock")], capture_output=True,
                                   text=True).stdout.strip()
    assert probe() == "locked"                          # held for the life of the running process
    first.release()
    assert probe() == "free"
    second = ResumeState(tmp_path, run_key(cfg))
    assert second.begin("run-b", "t1") == ("run-a", "t0") and second.resumed   # a later run resumes it


@pytest.mark.slow
@pytest.mark.parametrize("step", [[], ["method.flow_step=kernel", "method.flow_dtype=bfloat16"]],
                         ids=["in_backward", "kernel_bf16"])
def test_hyperflows_kill9_mid_pruning_then_rerun_equals_uninterrupted(tmp_path, step):
    """The flows' Adam state, the scheduler and (bf16 in the kernel) the rounding stream go through the checkpoint."""
    run = RUN_HYPERFLOWS + step
    ref_dir = tmp_path / "reference"
    _run(ref_dir, run)
    reference = _final(ref_dir)
    proc = _interrupt(tmp_path / "killed", signal.SIGKILL, "fit-finetune-finetune-0.pt", run)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    _run(tmp_path / "killed", run)
    record = _assert_same(reference, tmp_path / "killed", run)
    for key in ("density", "gamma_final", "hyperflows_history"):
        assert record["metrics"][key] == reference[0]["metrics"][key], key


def test_corrupt_state_json_really_starts_over(tmp_path):
    cfg = compose_cfg(TINY + ["method=dense"], tmp_path)
    state = ResumeState(tmp_path, run_key(cfg))
    state.begin("run-a", "t0")
    fit = state.dir / "fit-pretrain-pretrain-0.pt"
    fit.write_bytes(b"an old fit checkpoint")
    state.release()
    state.state_file.write_text('{"run_id": "run-a", "sta')      # torn state
    again = ResumeState(tmp_path, run_key(cfg))
    run_id, _ = again.begin("run-b", "t1")
    assert run_id == "run-b" and not again.resumed and again.state["attempts"] == 1
    assert not fit.exists() and fit.with_name(fit.name + ".corrupt").exists()   # the old fit is not reused


def test_checkpoints_are_created_with_the_umask_mode(tmp_path):
    from experiments.checkpoint import atomic_save

    old = os.umask(0o002)
    try:
        path = atomic_save({"a": torch.zeros(1)}, tmp_path / "x.pt")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o664


def test_ctrl_c_checkpoints_prints_one_line_exits_130_then_resumes(reference, tmp_path):
    proc = _interrupt(tmp_path, signal.SIGINT, "fit-finetune-finetune-0.pt")
    assert proc.returncode == 130, proc.stderr_text[-2000:]
    assert "Traceback" not in proc.stderr_text
    assert proc.stderr_text.strip().splitlines()[-1] == "interrupted; re-run the same command to resume"
    assert ResultsStore(tmp_path).records() == []
    _run(tmp_path)
    _assert_same(reference, tmp_path)
