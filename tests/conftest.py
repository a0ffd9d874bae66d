"""Shared fixtures: compose the real config (as run.py does) and shrink it for tests."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from experiments.cli import quote_numeric_options

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

#: Overrides that make any composed config run in seconds on a CPU.
TINY = ["trainer.epochs=1", "trainer.max_steps_per_epoch=2", "trainer.progress=false",
        "dataset.train_subset=512", "dataset.test_subset=512", "dataset.val_size=256",
        "logger=disabled", "measure.latency_repeats=1", "measure.dense_latency=false"]


def compose_cfg(overrides: list[str] | None = None, tmp_path: Path | None = None, return_hydra: bool = False):
    """Compose ``conf/config.yaml`` with overrides; ``results_dir`` points at a tmp dir (data: the default root)."""
    GlobalHydra.instance().clear()
    extra = []
    if tmp_path is not None:
        extra.append(f"results_dir={tmp_path}")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        overrides = quote_numeric_options(list(overrides or []))   # sparsity=90 works as on the command line
        return compose(config_name="config", overrides=overrides + extra, return_hydra_config=return_hydra)


@pytest.fixture
def tiny_cfg(tmp_path):
    def make(*overrides: str):
        return compose_cfg(TINY + list(overrides), tmp_path)
    return make
