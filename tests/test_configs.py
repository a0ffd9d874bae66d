"""Every config leaf composes, and every object config instantiates (catches bad ``_target_`` paths)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import CONF, compose_cfg
from hydra.utils import instantiate
from omegaconf import OmegaConf

from experiments.config_check import import_target, validate

GROUPS = ["dataset", "model", "method", "scorer", "sparsity", "routing", "trainer", "logger", "measure"]
LOCAL_DATA = {"fashion_mnist", "fashion_mnist32"}


def leaves(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


CASES = [(g, o) for g in GROUPS for o in leaves(g)]


@pytest.mark.parametrize("group,option", CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_leaf_composes_and_instantiates(group, option, tmp_path):
    overrides = [f"{group}={option}"]
    if group == "dataset" and option.startswith("imagenet"):
        overrides.append(f"dataset.root={tmp_path}")
    cfg = compose_cfg(overrides, tmp_path)
    OmegaConf.resolve(cfg)
    node = cfg[group]
    if group == "sparsity":
        assert node.target == pytest.approx(float(option) / 100)
    if group in ("method", "scorer", "routing") and "_target_" in node:
        target, built = import_target(node._target_, f"{group}._target_"), instantiate(node)
        if isinstance(target, type):
            assert isinstance(built, target), node._target_
        else:   # a factory (create_scorer): it built the variant the option names
            assert built.name == node.name, node._target_
    if group == "model":
        from experiments.models import create_model
        size = 32 if option.startswith("vit") else 28
        model = create_model(node.name, num_classes=10, in_channels=1, image_size=size, **node.kwargs).eval()
        with torch.no_grad():
            assert model(torch.zeros(2, 1, size, size)).shape == (2, 10), option   # builds and runs at this size
    if group == "dataset" and option in LOCAL_DATA:
        from experiments.data import create_dataset
        d = OmegaConf.to_container(node)
        name, _ = d.pop("name"), d.pop("root")
        bundle = create_dataset(name, root=str(Path(__file__).resolve().parents[1] / "data"), **{**d, "train_subset": 64})
        assert bundle.num_classes == 10
    if group == "trainer":
        from experiments.train import create_optimizer, create_schedule
        for phase in ("pretrain", "finetune"):
            r = node[phase]
            create_optimizer([("w", torch.nn.Parameter(torch.zeros(2)))], **r.optimizer)
            create_schedule(epochs=r.epochs, lr=r.optimizer.lr, **r.schedule)
    if group not in ("dataset",) or not option.startswith("imagenet"):
        validate(cfg)


@pytest.mark.parametrize("override,needle", [
    ("sparsity.target=1.5", "sparsity.target=1.5"),
    ("trainer.epochs=-1", "trainer.epochs=-1"),
    ("stages=[pretrain,bogus]", "unknown stage"),
    ("stages=[finetune,pretrain]", "pipeline order"),
    ("logger.mode=sometimes", "logger.mode=sometimes"),
    ("trainer.batch_size=0", "trainer.batch_size=0"),
    ("seed=-3", "seed=-3"),
])
def test_bad_values_fail_in_one_line_naming_the_key(override, needle, tmp_path):
    from experiments.config_check import ConfigError
    cfg = compose_cfg([override], tmp_path)
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    assert needle in str(info.value) and "\n" not in str(info.value)
