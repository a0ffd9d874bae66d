"""In-memory datasets and loaders.

Small datasets (MNIST-like, CIFAR) are held as uint8 tensors, moved to the training device once,
and batched there; normalisation and augmentation (random crop with padding, horizontal flip)
run on the whole batch on that device. A seeded validation split is carved from train.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Protocol

import torch
import torch.nn.functional as F

from ..errors import ConfigError


@dataclass(frozen=True)
class Augment:
    """Batch augmentation done on-device: random crop (zero padding) and horizontal flip."""

    crop_padding: int = 0
    hflip: bool = False

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.crop_padding:
            n, _, h, w = x.shape
            p = self.crop_padding
            padded = F.pad(x, (p, p, p, p))
            dx = torch.randint(0, 2 * p + 1, (n,), device=x.device, generator=generator)
            dy = torch.randint(0, 2 * p + 1, (n,), device=x.device, generator=generator)
            rows = (dy[:, None] + torch.arange(h, device=x.device)[None])  # n, h
            cols = (dx[:, None] + torch.arange(w, device=x.device)[None])  # n, w
            idx_n = torch.arange(n, device=x.device)[:, None, None]
            x = padded.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
        if self.hflip:
            flip = torch.rand(x.shape[0], device=x.device, generator=generator) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        return x


class Loader(Protocol):
    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...
    def __len__(self) -> int: ...


class TensorLoader:
    """Batches of (normalised float image, label) from uint8 tensors, on ``device``.

    Each ``iter()`` draws a fresh permutation from the loader's own generator, so a seeded run is
    reproducible and does not consume the global RNG.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, mean: torch.Tensor,
                 std: torch.Tensor, shuffle: bool = False, drop_last: bool = False,
                 augment: Augment | None = None, seed: int = 0, device: torch.device | str = "cpu",
                 max_batches: int | None = None):
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device)
        self.batch_size = int(batch_size)
        self.mean = mean.to(self.device).view(1, -1, 1, 1)
        self.std = std.to(self.device).view(1, -1, 1, 1)
        self.shuffle, self.drop_last, self.augment = shuffle, drop_last, augment
        self.max_batches = max_batches
        self.generator = torch.Generator(device="cpu").manual_seed(int(seed))
        self.aug_generator = torch.Generator(device=self.device).manual_seed(int(seed) + 1)

    def __len__(self) -> int:
        n = len(self.labels)
        batches = n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        return min(batches, self.max_batches) if self.max_batches else batches

    def generator_state(self) -> dict:
        return {"perm": self.generator.get_state(), "aug": self.aug_generator.get_state()}

    def set_generator_state(self, state: dict) -> None:
        self.generator.set_state(state["perm"])
        self.aug_generator.set_state(state["aug"])

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.labels)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        order = order.to(self.device)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            x = self.images[idx].float().div_(255.0)
            if self.augment is not None:
                x = self.augment(x, self.aug_generator)
            yield (x - self.mean) / self.std, self.labels[idx]


@dataclass
class TensorSplits:
    """uint8 NCHW image tensors and int64 labels for train / val / test."""

    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]


@dataclass
class DataBundle:
    """Everything a stage needs to know about a dataset, plus loader factories.

    Works for in-memory datasets (``splits``) and for file-backed ones, which pass
    ``loader_factory(split, batch_size, train) -> iterable`` instead.
    """

    name: str
    num_classes: int
    in_channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    splits: TensorSplits | None = None
    augment: Augment | None = None
    loader_factory: object | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0

    def split_size(self, split: str) -> int:
        if self.splits is None:
            return len(self.loader_factory(split, 1, False).dataset)  # type: ignore[attr-defined]
        return len(getattr(self.splits, split)[1])

    def loader(self, split: str, batch_size: int, train: bool = False, seed_offset: int = 0,
               max_batches: int | None = None):
        """``train=True``: shuffled, augmented, last partial batch dropped."""
        if split not in ("train", "val", "test"):
            raise ValueError(f"unknown split {split!r}; expected train, val or test")
        if self.splits is None:
            return self.loader_factory(split, batch_size, train)  # type: ignore[operator]
        images, labels = getattr(self.splits, split)
        return TensorLoader(images, labels, batch_size, torch.tensor(self.mean), torch.tensor(self.std),
                            shuffle=train, drop_last=train, augment=self.augment if train else None,
                            seed=self.seed + seed_offset, device=self.device, max_batches=max_batches)

    def calibration_loader(self, num_batches: int, batch_size: int, seed_offset: int = 1000):
        """``num_batches`` labelled, shuffled, un-augmented training batches (AGF calibration)."""
        if self.splits is None:
            return _take(self.loader_factory("train", batch_size, False), num_batches)  # type: ignore
        images, labels = self.splits.train
        return TensorLoader(images, labels, batch_size, torch.tensor(self.mean), torch.tensor(self.std),
                            shuffle=True, drop_last=True, seed=self.seed + seed_offset,
                            device=self.device, max_batches=num_batches)

    def example_input(self, batch_size: int = 1) -> torch.Tensor:
        return torch.zeros(batch_size, self.in_channels, self.image_size, self.image_size, device=self.device)


class _take:
    def __init__(self, loader, n):
        self.loader, self.n = loader, n

    def __len__(self):
        return min(self.n, len(self.loader))

    def __iter__(self):
        for i, batch in enumerate(self.loader):
            if i >= self.n:
                return
            yield batch


def carve_validation(images: torch.Tensor, labels: torch.Tensor, val_size: int, seed: int):
    """Seeded split of train into (train, val); the permutation depends only on ``seed``."""
    if val_size <= 0:
        empty = (images[:0], labels[:0])
        return (images, labels), empty
    if val_size >= len(labels):
        raise ConfigError(f"dataset.val_size={val_size} must be smaller than the training set ({len(labels)})")
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(int(seed)))
    val_idx, train_idx = perm[:val_size], perm[val_size:]
    return (images[train_idx], labels[train_idx]), (images[val_idx], labels[val_idx])


def subset(images: torch.Tensor, labels: torch.Tensor, size: int | None, seed: int):
    """A seeded random subset of ``size`` examples (all when ``size`` is None)."""
    if size is None or size >= len(labels):
        return images, labels
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(int(seed) + 7))[:size]
    return images[perm], labels[perm]
