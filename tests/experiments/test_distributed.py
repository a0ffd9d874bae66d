"""DDP through torchrun (gloo, 2 CPU processes) equals one process; masks agree on both ranks."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from conftest import ROOT
from experiments import distributed
from experiments.checkpoint import load_model
from experiments.data.bundle import Augment, TensorLoader
from experiments.results import ResultsStore

ARGS = ["method=dense", "method.finetune=true", "method._target_=ddp_mask_method.ActivationMaskMethod", "+method.density=0.5",
        "trainer.epochs=2", "trainer.batch_size=64", "trainer.progress=false", "dataset.train_subset=1280",
        "dataset.test_subset=512", "dataset.val_size=256", "logger=disabled", "measure.latency_repeats=0",
        "measure.dense_latency=false"]


def _env():
    path = os.pathsep.join([str(ROOT / "tests" / "experiments"), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": path}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_helpers_are_no_ops_without_a_process_group():
    t = torch.arange(4.0)
    assert distributed.all_reduce_(t) is t and torch.equal(t, torch.arange(4.0))
    assert distributed.broadcast_(t) is t and distributed.broadcast_object({"a": 1}) == {"a": 1}
    assert distributed.is_main_process() and distributed.world_size() == 1


def test_sharded_loader_ranks_partition_the_global_batches():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 255, (40, 1, 6, 6), dtype=torch.uint8, generator=g)
    y = torch.arange(40)
    make = lambda: TensorLoader(x, y, 8, torch.tensor([0.5]), torch.tensor([0.25]), shuffle=True,
                                drop_last=True, augment=Augment(crop_padding=1, hflip=True), seed=3)
    full = list(make())
    shards = [list(distributed.ShardedLoader(make(), r, 2)) for r in (0, 1)]
    for b, (xb, yb) in enumerate(full):
        assert torch.equal(torch.cat([shards[0][b][1], shards[1][b][1]]), yb)
        assert torch.equal(torch.cat([shards[0][b][0], shards[1][b][0]]), xb)   # same augmentation too
    with pytest.raises(ValueError, match="trainer.batch_size=8 must be divisible"):
        distributed.ShardedLoader(make(), 0, 3)


@pytest.mark.slow
def test_torchrun_two_processes_equals_one_process_with_identical_masks(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    out = subprocess.run([sys.executable, "run.py", *ARGS, f"results_dir={one}"], cwd=ROOT, env=_env(),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", "run.py", *ARGS, f"results_dir={two}"]
    out = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]

    recs = {k: ResultsStore(d).records() for k, d in (("one", one), ("two", two))}
    assert len(recs["one"]) == 1 and len(recs["two"]) == 1          # rank 0 alone writes the record
    assert len(list((two / "hydra" / "torchrun").iterdir())) == 1     # one pinned run dir for both ranks
    r1, r2 = recs["one"][0], recs["two"][0]
    assert r2["status"] == "ok"
    assert abs(r1["metrics"]["test_acc"] - r2["metrics"]["test_acc"]) <= 0.5
    assert abs(r1["metrics"]["dense_test_acc"] - r2["metrics"]["dense_test_acc"]) <= 0.5
    w1, _ = load_model(r1["checkpoints"]["final"])
    w2, _ = load_model(r2["checkpoints"]["final"])
    for (name, a), b in zip(w1.state_dict().items(), w2.state_dict().values()):
        torch.testing.assert_close(a, b, atol=2e-4, rtol=1e-3, msg=name)

    ranks = [json.loads((two / f"masks-rank{r}.json").read_text()) for r in (0, 1)]
    single = json.loads((one / "masks-rank0.json").read_text())
    for layer in ranks[0]:
        assert ranks[0][layer]["reduced"] == ranks[1][layer]["reduced"]      # identical masks
        if layer.startswith("epoch0/"):  # dense weights: the shard-local scores pick different masks
            assert ranks[0][layer]["local"] != ranks[1][layer]["local"]      # ...so equal only thanks to all_reduce_
        a, b = set(ranks[0][layer]["mask"]), set(single[layer]["mask"])
        assert len(a & b) >= 0.99 * len(b)                                   # and the same as one process


@pytest.mark.slow
@pytest.mark.parametrize("method, extra", [
    ("hyperflows", ["method.flow_lr=0.05", "method.pruning_epochs=1", "sparsity.target=0.5"]),
    ("rigl", ["method.update_every=3", "sparsity.target=0.8"]),
])
def test_torchrun_ranks_hold_identical_masks_for_real_methods(tmp_path, method, extra):
    """Hyperflows (t is a DDP-averaged parameter) and RigL (dense gradients all-reduced before grow)."""
    target = {"hyperflows": "DumpingHyperflows", "rigl": "DumpingRigL"}[method]
    args = [f"method={method}", f"method._target_=ddp_mask_method.{target}", *extra, *ARGS[4:]]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", "run.py", *args, f"results_dir={tmp_path}"]
    out = subprocess.run(cmd, cwd=ROOT, env={**_env(), "MASK_DUMP_DIR": str(tmp_path)}, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"masks-rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1]
    assert sum(v["kept"] for v in ranks[0].values()) < sum(v["numel"] for v in ranks[0].values())  # something pruned
