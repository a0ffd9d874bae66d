from pathlib import Path

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


def _idx(shape, dims_magic, body: bytes) -> bytes:
    head = dims_magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in shape)
    return head + body


def test_idx_reader_matches_numpy_and_names_a_truncated_file(tmp_path):
    import gzip

    import numpy as np

    from experiments.data.sources import DatasetCorrupt, read_idx

    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    good = tmp_path / "train-images-idx3-ubyte.gz"
    good.write_bytes(gzip.compress(_idx(images.shape, 0x803, images.tobytes())))
    assert np.array_equal(read_idx(good), images)
    bad = tmp_path / "t10k-labels-idx1-ubyte"
    bad.write_bytes(_idx((10,), 0x801, bytes(7)))           # 7 of 10 label bytes
    with pytest.raises(DatasetCorrupt, match=r"t10k-labels-idx1-ubyte is corrupt \(truncated: 7 of 10 bytes\)"):
        read_idx(bad)
    junk = tmp_path / "x.gz"
    junk.write_bytes(b"not gzip at all")
    with pytest.raises(DatasetCorrupt, match="x.gz is corrupt"):
        read_idx(junk)


def test_fashion_mnist_is_read_in_place_from_debian_without_copying(tmp_path):
    from experiments.data.sources import DEBIAN_FASHION_MNIST, load_mnist_like

    if not (DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    tx, ty, vx, vy = load_mnist_like("fashion_mnist", tmp_path / "empty-root", download=False)
    assert tx.shape == (60000, 1, 28, 28) and vx.shape == (10000, 1, 28, 28)
    assert int(ty.bincount().min()) == 6000 and int(vy.bincount().min()) == 1000   # balanced classes
    assert not (tmp_path / "empty-root").exists()                                   # nothing written


def test_default_data_root_is_outside_the_checkout(monkeypatch):
    from conftest import ROOT
    from experiments.study import compose

    monkeypatch.delenv("FLOWPRUNE_DATA", raising=False)
    root = Path(compose([])["data_root"])
    assert ROOT not in root.parents and root != ROOT / "data"
    monkeypatch.setenv("FLOWPRUNE_DATA", "/somewhere/else")
    assert compose([])["data_root"] == "/somewhere/else"


def test_imagenet100_class_list_remaps_to_sorted_indices_and_drops_the_rest(tmp_path):
    """An ImageFolder with wnids n001 (black), n002 (grey), n003 (white); the class list keeps n003 and n001:
    labels become 0 = n001, 1 = n003 (sorted wnids), n002's images are gone, in train and in test (= val/)."""
    from PIL import Image

    from experiments.data import DatasetUnavailable
    from experiments.data.imagenet import imagenet_loader_factory

    shade = {"n001": 0, "n002": 128, "n003": 255}
    for sub in ("train", "val"):
        for wnid, v in shade.items():
            (tmp_path / sub / wnid).mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (10, 10), (v, v, v)).save(tmp_path / sub / wnid / f"{i}.png")
    classes = tmp_path / "classes.txt"
    classes.write_text("# two of three\nn003 white\nn001 black\n")
    factory = imagenet_loader_factory(tmp_path, image_size=8, num_workers=0, class_list=classes, pin_memory=False)
    for split in ("train", "test"):
        xs, ys = zip(*factory(split, 2, False))
        x, y = torch.cat(xs), torch.cat(ys)
        assert len(y) == 6 and sorted(y.tolist()) == [0, 0, 0, 1, 1, 1], split
        assert torch.equal(x.mean(dim=(1, 2, 3)) > 0, y == 1), split   # white (n003) -> 1, black (n001) -> 0
    classes.write_text("n001\nn009\n")
    with pytest.raises(DatasetUnavailable, match="n009"):
        list(imagenet_loader_factory(tmp_path, image_size=8, num_workers=0, class_list=classes,
                                     pin_memory=False)("test", 2, False))
