"""Dataset sources: where the bytes come from, and the clear error when they are not there.

Every source returns uint8 NCHW tensors; ``create_dataset`` turns them into a ``DataBundle``.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from ..errors import DatasetCorrupt, DatasetUnavailable

#: Debian package ``dataset-fashion-mnist`` installs the four idx files here.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


#: idx magic: 0x00000801 labels (uint8, 1 dim), 0x00000803 images (uint8, 3 dims)
_IDX_DIMS = {0x801: 1, 0x803: 3}


def read_idx(path: Path) -> np.ndarray:
    """One idx file (plain or ``.gz``) as a uint8 array; a truncated or malformed file is ``DatasetCorrupt``."""
    try:
        raw = gzip.open(path, "rb").read() if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DatasetCorrupt(f"{path} is corrupt ({type(exc).__name__}: {exc}); delete it and re-install or "
                             f"re-download it") from None
    magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else -1
    dims = _IDX_DIMS.get(magic)
    if dims is None:
        raise DatasetCorrupt(f"{path} is corrupt (not an idx file: magic {magic:#x}); delete it and re-install or "
                             f"re-download it")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    body = raw[4 + 4 * dims:]
    if len(body) != int(np.prod(shape)):
        raise DatasetCorrupt(f"{path} is corrupt (truncated: {len(body)} of {int(np.prod(shape))} bytes); delete it "
                             f"and re-install or re-download it")
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def _idx_files(directory: Path) -> list[Path] | None:
    """The four MNIST-format files in ``directory`` (plain or gzipped), or None if any is missing."""
    found = []
    for name in MNIST_FILES:
        for candidate in (directory / name, directory / f"{name}.gz"):
            if candidate.is_file():
                found.append(candidate)
                break
        else:
            return None
    return found


def _tensors(files: list[Path]):
    tx, ty, vx, vy = (torch.from_numpy(read_idx(f).copy()) for f in files)
    for images, labels, split in ((tx, ty, "train"), (vx, vy, "test")):
        if len(images) != len(labels):
            raise DatasetCorrupt(f"{files[0].parent}: {split} images ({len(images)}) and labels ({len(labels)}) "
                                 f"differ in number; the files are corrupt")
    return tx.unsqueeze(1).contiguous(), ty.long(), vx.unsqueeze(1).contiguous(), vy.long()


def load_mnist_like(name: str, root: str | Path, download: bool = True):
    """(train_x, train_y, test_x, test_y) as uint8 N×1×28×28 and int64.

    Read in place from ``<root>/<FashionMNIST|MNIST>/raw`` when the idx files are there, else (Fashion-MNIST)
    from Debian's ``dataset-fashion-mnist`` without copying, else downloaded by torchvision into ``root``.
    """
    from torchvision import datasets

    cls = {"fashion_mnist": datasets.FashionMNIST, "mnist": datasets.MNIST}[name]
    root = Path(root).expanduser()
    raw_dir = root / cls.__name__ / "raw"
    files = _idx_files(raw_dir)
    if files is None and name == "fashion_mnist":
        files = _idx_files(DEBIAN_FASHION_MNIST)
    if files is None:
        try:
            cls(str(root), train=True, download=download)
            cls(str(root), train=False, download=download)
        except Exception as exc:  # noqa: BLE001 - any download/IO failure becomes one clear line
            hint = (" or `apt-get install dataset-fashion-mnist`" if name == "fashion_mnist" else "")
            raise DatasetUnavailable(
                f"{name} not found under {raw_dir} and could not be downloaded ({type(exc).__name__}); "
                f"put the idx files there, set data_root=<dir>{hint}") from None
        files = _idx_files(raw_dir)
        if files is None:
            raise DatasetUnavailable(f"{name}: torchvision reported success but {raw_dir} lacks the idx files")
    return _tensors(files)


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
