"""Dataset sources: where the bytes come from, and the clear error when they are not there.

Every source returns uint8 NCHW tensors; ``create_dataset`` turns them into a ``DataBundle``.
"""
from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import torch

#: Debian package ``dataset-fashion-mnist`` installs the four idx files here.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class DatasetUnavailable(FileNotFoundError):
    """The dataset is neither on disk nor downloadable; the message names the fix."""


def _stage_debian_fashion_mnist(raw_dir: Path) -> bool:
    """Gunzip Debian's Fashion-MNIST files into torchvision's ``<root>/FashionMNIST/raw``."""
    if not all((DEBIAN_FASHION_MNIST / f"{f}.gz").exists() for f in MNIST_FILES):
        return False
    raw_dir.mkdir(parents=True, exist_ok=True)
    for name in MNIST_FILES:
        target = raw_dir / name
        if target.exists():
            continue
        tmp = target.with_suffix(".tmp")
        with gzip.open(DEBIAN_FASHION_MNIST / f"{name}.gz", "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
        tmp.replace(target)
    return True


def load_mnist_like(name: str, root: str | Path, download: bool = True):
    """(train_x, train_y, test_x, test_y) as uint8 N×1×28×28 and int64, via torchvision.

    Fashion-MNIST falls back to Debian's ``dataset-fashion-mnist`` files before downloading.
    """
    from torchvision import datasets

    cls = {"fashion_mnist": datasets.FashionMNIST, "mnist": datasets.MNIST}[name]
    root = Path(root)
    raw_dir = root / cls.__name__ / "raw"
    if name == "fashion_mnist" and not all((raw_dir / f).exists() for f in MNIST_FILES):
        _stage_debian_fashion_mnist(raw_dir)
    try:
        train = cls(str(root), train=True, download=download)
        test = cls(str(root), train=False, download=download)
    except Exception as exc:  # noqa: BLE001 - any download/IO failure becomes one clear line
        hint = (" or `apt-get install dataset-fashion-mnist`" if name == "fashion_mnist" else "")
        raise DatasetUnavailable(
            f"{name} not found under {raw_dir} and could not be downloaded ({type(exc).__name__}); "
            f"put the idx files there, set data_root=<dir>{hint}") from None
    return (train.data.unsqueeze(1).contiguous(), train.targets.long(),
            test.data.unsqueeze(1).contiguous(), test.targets.long())


def load_cifar(name: str, root: str | Path, download: bool = True):
    """CIFAR-10/100 as uint8 N×3×32×32 tensors via torchvision (downloads when allowed)."""
    from torchvision import datasets

    cls = {"cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100}[name]
    try:
        train = cls(str(root), train=True, download=download)
        test = cls(str(root), train=False, download=download)
    except Exception as exc:  # noqa: BLE001
        raise DatasetUnavailable(
            f"{name} not found under {root} and could not be downloaded ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); download it on a connected machine and "
            f"set data_root=<dir containing {cls.base_folder}>") from None

    def to_tensor(ds):
        x = torch.from_numpy(np.asarray(ds.data)).permute(0, 3, 1, 2).contiguous()
        return x, torch.as_tensor(ds.targets, dtype=torch.long)

    return (*to_tensor(train), *to_tensor(test))


def to_32px_rgb(images: torch.Tensor) -> torch.Tensor:
    """28×28×1 → 32×32×3: zero-pad 2 px on each side and repeat the channel (CIFAR-shaped view)."""
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    return padded.expand(-1, 3, -1, -1).contiguous()
