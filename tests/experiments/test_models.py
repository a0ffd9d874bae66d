"""Model registry: every model builds and trains a step, paper parameter counts, loading and errors."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from experiments.errors import ConfigError
from experiments.models import create_model, list_models, load_state_dict_file, register_model

ALL = list_models()
# Each model runs forward+backward at 28 px / 1 channel and at 32 px / 3 channels, except these
# (too slow at batch 2 on CPU, or the same code as another entry): 32 px / 3 channels only.
ONE_GEOMETRY = {"resnet50", "vit_base", "wrn18_2"}
CASES = [(name, c, s) for name in ALL for c, s in ((1, 28), (3, 32)) if name not in ONE_GEOMETRY or c == 3]


def conv_fc_weights(model: nn.Module) -> int:
    """Prunable weight count: conv + linear weights (no biases, no BN)."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def test_registered_names() -> None:
    expected = {"lenet300", "lenet5", "resnet8", "resnet20", "resnet32", "resnet56", "resnet18_cifar",
                "resnet50_cifar", "vgg19_cifar", "wrn", "wrn18_2", "resnet18", "resnet50",
                "vit_tiny", "vit_base", "vit_micro"}
    assert expected <= set(ALL)
    assert set(list_models(pretrained=True)) == {"resnet18", "resnet50", "vit_tiny", "vit_base"}


@pytest.mark.parametrize("name,in_channels,image_size", CASES)
def test_build_forward_backward(name: str, in_channels: int, image_size: int) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=7, in_channels=in_channels, image_size=image_size)
    classifier, stem = model.get_submodule(model.classifier_name), model.get_submodule(model.stem_name)
    assert isinstance(classifier, nn.Linear) and classifier.out_features == 7
    assert isinstance(stem, (nn.Conv2d, nn.Linear))
    ids = [id(m) for _, m in model.named_modules(remove_duplicate=False)]
    assert len(ids) == len(set(ids)), "a module instance is used twice (shared ReLU?)"
    assert all(not m.inplace for m in model.modules() if isinstance(m, nn.ReLU))

    batch = 1 if name == "vit_base" else 2
    out = model(torch.randn(batch, in_channels, image_size, image_size))
    assert out.shape == (batch, 7)
    out.sum().backward()
    assert stem.weight.grad is not None and classifier.weight.grad is not None


def test_relu_modules_cover_convnets() -> None:
    """One nn.ReLU module per use in a CIFAR ResNet: the stem plus two per basic block."""
    model = create_model("resnet20", num_classes=10, in_channels=3, image_size=32)
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    assert len(relus) == 1 + 9 * 2


def test_vit_token_counts() -> None:
    assert create_model("vit_micro", 10, 1, 28).patch_embed.num_patches == 49
    micro = create_model("vit_micro", 10, 3, 32)
    assert micro.patch_embed.num_patches == 64 and micro.embed_dim == 64 and len(micro.blocks) == 4
    assert create_model("vit_tiny", 10, 3, 224).patch_embed.num_patches == 196   # 16x16 patches from 64 px


# --- parameter counts from the paper specs -----------------------------------------------------------


def test_lenet300_counts() -> None:
    model = create_model("lenet300", num_classes=10, in_channels=1, image_size=28)
    assert sum(p.numel() for p in model.parameters()) == 266_610
    assert conv_fc_weights(model) == 266_200


@pytest.mark.parametrize("name,num_classes,expected", [
    ("resnet50_cifar", 10, 23_467_712),
    ("resnet50_cifar", 100, 23_652_032),
    ("vgg19_cifar", 10, 20_024_000),
    ("vgg19_cifar", 100, 20_070_080),
])
def test_cifar_weight_counts(name: str, num_classes: int, expected: int) -> None:
    assert conv_fc_weights(create_model(name, num_classes, 3, 32)) == expected


def test_width_multipliers() -> None:
    assert create_model("resnet20", 10, 3, 32, width=2.0).fc.in_features == 128
    assert create_model("vgg19_cifar", 10, 3, 32, width=0.5).classifier.in_features == 256
    assert create_model("wrn18_2", 10, 3, 32).fc.in_features == 1024
    assert create_model("wrn", 10, 3, 32, depth=28, widen_factor=10).fc.in_features == 640


def test_lenet5_geometry() -> None:
    for size in (28, 32):
        assert create_model("lenet5", 10, 1, size).fc1.in_features == 400


# --- checkpoints and pretrained weights ---------------------------------------------------------------


@pytest.mark.parametrize("wrapper", [None, "model", "state_dict"])
def test_checkpoint_round_trip(tmp_path, wrapper: str | None) -> None:
    torch.manual_seed(0)
    source = create_model("resnet8", 10, 3, 32).eval()
    with torch.no_grad():   # make BN running stats non-default so they must be loaded too
        source(torch.randn(8, 3, 32, 32))
        for m in source.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
    state = source.state_dict()
    path = tmp_path / "ckpt.pt"
    torch.save(state if wrapper is None else {wrapper: state, "epoch": 3}, path)
    loaded = create_model("resnet8", 10, 3, 32, checkpoint=str(path)).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(source(x), loaded(x))
    assert set(load_state_dict_file(path)) == set(state)


def test_checkpoint_strips_wrapper_prefix(tmp_path) -> None:
    source = create_model("lenet300", 10, 1, 28)
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, tmp_path / "dp.pt")
    loaded = create_model("lenet300", 10, 1, 28, checkpoint=str(tmp_path / "dp.pt"))
    assert torch.equal(loaded.fc1.weight, source.fc1.weight)


def test_checkpoint_missing_file(tmp_path) -> None:
    path = tmp_path / "nope.pt"
    with pytest.raises(ConfigError, match="model.checkpoint") as info:
        create_model("lenet300", 10, 1, 28, checkpoint=str(path))
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_checkpoint_mismatch_is_one_line(tmp_path) -> None:
    torch.save(create_model("lenet300", 10, 1, 28).state_dict(), tmp_path / "m.pt")
    with pytest.raises(RuntimeError, match="does not fit model 'lenet300'") as info:
        create_model("lenet300", 100, 1, 28, checkpoint=str(tmp_path / "m.pt"))
    assert "\n" not in str(info.value)


def test_pretrained_without_weights() -> None:
    with pytest.raises(ValueError, match="has no pretrained weights") as info:
        create_model("resnet20", 10, 3, 32, pretrained=True)
    assert "\n" not in str(info.value)


def test_pretrained_download_failure_torchvision(monkeypatch) -> None:
    from torchvision.models._api import WeightsEnum

    def offline(*args, **kwargs):
        raise OSError("<urlopen error [Errno -2] Name or service not known>")

    monkeypatch.setattr(WeightsEnum, "get_state_dict", offline)
    with pytest.raises(RuntimeError, match=r"pretrained weights for 'resnet18' could not be downloaded") as info:
        create_model("resnet18", 10, 3, 32, pretrained=True)
    assert "model.checkpoint=<path>" in str(info.value) and "\n" not in str(info.value)
    assert isinstance(info.value.__cause__, OSError)


def test_pretrained_download_failure_timm(monkeypatch) -> None:
    import timm

    def offline(*args, **kwargs):
        if kwargs.get("pretrained"):
            raise OSError("cannot reach huggingface.co")
        return real(*args, **kwargs)

    real = timm.create_model
    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(RuntimeError, match=r"pretrained weights for 'vit_tiny' could not be downloaded"):
        create_model("vit_tiny", 10, 3, 32, pretrained=True)


def test_checkpoint_wins_over_pretrained(tmp_path, monkeypatch) -> None:
    from torchvision.models._api import WeightsEnum

    monkeypatch.setattr(WeightsEnum, "get_state_dict", lambda *a, **k: pytest.fail("must not download"))
    source = create_model("resnet18", 10, 1, 28)
    torch.save(source.state_dict(), tmp_path / "r18.pt")
    loaded = create_model("resnet18", 10, 1, 28, pretrained=True, checkpoint=str(tmp_path / "r18.pt"))
    assert torch.equal(loaded.conv1.weight, source.conv1.weight)


# --- registry errors ----------------------------------------------------------------------------------


def test_unknown_model_name() -> None:
    with pytest.raises(ValueError, match="unknown model 'resnet1000'; available: .*resnet20") as info:
        create_model("resnet1000", 10, 3, 32)
    assert "\n" not in str(info.value)


def test_unknown_kwarg() -> None:
    with pytest.raises(ConfigError, match="model 'resnet20' got unexpected keyword argument.*depth") as info:
        create_model("resnet20", 10, 3, 32, depth=20)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="model 'lenet300'.*accepted: none"):
        create_model("lenet300", 10, 1, 28, width=2.0)


def test_register_model_rejects_duplicates_and_bad_signatures() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_model("lenet300")(lambda num_classes, in_channels, image_size: nn.Identity())
    with pytest.raises(TypeError, match="must accept"):
        register_model("_bad_builder")(lambda num_classes: nn.Identity())
