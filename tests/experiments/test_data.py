import pytest
import torch

from experiments.data import Augment, create_dataset
from experiments.data.bundle import carve_validation
from experiments.data.sources import to_32px_rgb


def test_random_crop_equals_brute_force_padding_and_slicing():
    torch.manual_seed(0)
    x = torch.randn(5, 2, 6, 6)
    g1 = torch.Generator().manual_seed(3)
    out = Augment(crop_padding=2)(x, g1)
    g2 = torch.Generator().manual_seed(3)
    dx = torch.randint(0, 5, (5,), generator=g2)
    dy = torch.randint(0, 5, (5,), generator=g2)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(5):
        ref = padded[i, :, dy[i]:dy[i] + 6, dx[i]:dx[i] + 6]
        assert torch.equal(out[i], ref)


def test_validation_split_is_seeded_and_disjoint():
    x = torch.arange(100).view(100, 1, 1, 1)
    y = torch.arange(100)
    (tx, ty), (vx, vy) = carve_validation(x, y, 20, seed=0)
    (tx2, _), (vx2, _) = carve_validation(x, y, 20, seed=0)
    assert torch.equal(vx, vx2) and len(vy) == 20 and len(ty) == 80
    assert not set(ty.tolist()) & set(vy.tolist())
    with pytest.raises(ValueError, match="dataset.val_size"):
        carve_validation(x, y, 100, seed=0)


def test_fashion_mnist_loads_and_loader_normalises():
    b = create_dataset("fashion_mnist", root="data", val_size=1000, train_subset=2000, test_subset=500)
    assert (b.num_classes, b.in_channels, b.image_size) == (10, 1, 28)
    assert b.split_size("train") == 2000 and b.split_size("val") == 1000 and b.split_size("test") == 500
    xs = torch.cat([x for x, _ in b.loader("test", 250)])
    assert xs.shape == (500, 1, 28, 28) and abs(xs.mean().item()) < 0.2 and 0.8 < xs.std().item() < 1.2
    cal = list(b.calibration_loader(num_batches=3, batch_size=64))
    assert len(cal) == 3 and cal[0][0].shape == (64, 1, 28, 28)


def test_32px_view_is_padding_and_channel_repeat():
    x = torch.randint(0, 255, (2, 1, 28, 28), dtype=torch.uint8)
    y = to_32px_rgb(x)
    assert y.shape == (2, 3, 32, 32)
    assert torch.equal(y[:, 1, 2:30, 2:30], x[:, 0]) and y[:, :, :2].sum() == 0


def test_missing_dataset_is_one_clear_line(tmp_path):
    from experiments.data import DatasetUnavailable
    with pytest.raises(DatasetUnavailable) as info:
        create_dataset("cifar10", root=str(tmp_path), download=False)
    assert "data_root" in str(info.value) and "\n" not in str(info.value)
