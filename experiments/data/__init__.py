"""Datasets: a registry of builders and one ``create_dataset``.

>>> bundle = create_dataset("fashion_mnist", root="data", val_size=5000, seed=0)
>>> loader = bundle.loader("train", batch_size=128, train=True)

A dataset outside the project plugs in by the dotted path of a builder called like a registered one
(``dataset._target_`` in a config, ``target=`` here); ``tensor_bundle`` turns uint8 tensors into a bundle.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..config_check import ConfigError, import_target
from .bundle import Augment, DataBundle, TensorLoader, TensorSplits, carve_validation, subset
from .imagenet import IMAGENET_MEAN, IMAGENET_STD, imagenet_loader_factory
from .sources import DatasetUnavailable, load_cifar, load_mnist_like, to_32px_rgb

__all__ = ["create_dataset", "list_datasets", "register_dataset", "tensor_bundle", "DataBundle",
           "DatasetUnavailable", "Augment", "TensorLoader"]

_REGISTRY: dict[str, Callable[..., DataBundle]] = {}

FASHION_MEAN, FASHION_STD = (0.2860,), (0.3530,)
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)


def register_dataset(name: str):
    def deco(fn):
        _REGISTRY[name] = fn
        return fn
    return deco


def list_datasets() -> list[str]:
    return sorted(_REGISTRY)


def create_dataset(name: str, root: str = "data", val_size: int = 5000, seed: int = 0,
                   train_subset: int | None = None, test_subset: int | None = None,
                   augment: bool = True, device: str | torch.device = "cpu", download: bool = True,
                   target: str | None = None, **kwargs) -> DataBundle:
    """Build the ``DataBundle`` for ``name`` (or with the builder at dotted path ``target``); the validation
    split is carved from train with ``seed``."""
    if target:
        build = import_target(target, "dataset._target_")
    elif name in _REGISTRY:
        build = _REGISTRY[name]
    else:
        raise ConfigError(f"dataset={name!r} is unknown; available: {', '.join(list_datasets())}")
    bundle = build(root=root, val_size=val_size, seed=seed, train_subset=train_subset, test_subset=test_subset,
                   augment=augment, device=torch.device(device), download=download, **kwargs)
    if not isinstance(bundle, DataBundle):
        raise TypeError(f"dataset builder {target or name} returned {type(bundle).__name__}, not a DataBundle "
                        f"(build one with experiments.data.tensor_bundle)")
    return bundle


def tensor_bundle(name, tensors, num_classes, mean, std, aug=None, *, val_size, seed, train_subset, test_subset,
                  device) -> DataBundle:
    """A bundle from uint8 NCHW ``tensors`` = (train_x, train_y, test_x, test_y): the validation split (fixed
    across seeds) and subsets carved as for the built-in datasets; ``mean``/``std`` per channel in [0, 1] units."""
    train_x, train_y, test_x, test_y = tensors
    (train_x, train_y), val = carve_validation(train_x, train_y, val_size, seed=0)  # split fixed across seeds
    for key, size, n in (("train_subset", train_subset, len(train_y)), ("test_subset", test_subset, len(test_y))):
        if size is not None and size > n:
            raise ConfigError(f"dataset.{key}={size} is larger than the {key.split('_')[0]} split of {name} "
                              f"({n} images{' after the validation split' if key == 'train_subset' else ''}); "
                              f"use at most {n} or null for all")
    train_x, train_y = subset(train_x, train_y, train_subset, seed=0)
    test_x, test_y = subset(test_x, test_y, test_subset, seed=0)
    return DataBundle(name=name, num_classes=num_classes, in_channels=train_x.shape[1],
                      image_size=train_x.shape[-1], mean=mean, std=std,
                      splits=TensorSplits((train_x, train_y), val, (test_x, test_y)), augment=aug,
                      device=device, seed=seed)


@register_dataset("fashion_mnist")
def fashion_mnist(root, download, augment, **kw):
    """Fashion-MNIST 28×28×1 (embedded default: Debian's ``dataset-fashion-mnist`` files)."""
    aug = Augment(crop_padding=2, hflip=True) if augment else None
    return tensor_bundle("fashion_mnist", load_mnist_like("fashion_mnist", root, download), 10,
                          FASHION_MEAN, FASHION_STD, aug, **kw)


@register_dataset("fashion_mnist32")
def fashion_mnist32(root, download, augment, **kw):
    """Fashion-MNIST zero-padded to 32×32 and repeated to 3 channels, so CIFAR architectures run unchanged."""
    tx, ty, vx, vy = load_mnist_like("fashion_mnist", root, download)
    aug = Augment(crop_padding=4, hflip=True) if augment else None
    return tensor_bundle("fashion_mnist32", (to_32px_rgb(tx), ty, to_32px_rgb(vx), vy), 10,
                          FASHION_MEAN * 3, FASHION_STD * 3, aug, **kw)


@register_dataset("mnist")
def mnist(root, download, augment, **kw):
    """MNIST 28×28×1 (torchvision download; no flips for digits)."""
    aug = Augment(crop_padding=2) if augment else None
    return tensor_bundle("mnist", load_mnist_like("mnist", root, download), 10, MNIST_MEAN, MNIST_STD, aug, **kw)


@register_dataset("cifar10")
def cifar10(root, download, augment, **kw):
    aug = Augment(crop_padding=4, hflip=True) if augment else None
    return tensor_bundle("cifar10", load_cifar("cifar10", root, download), 10, CIFAR10_MEAN, CIFAR10_STD, aug, **kw)


@register_dataset("cifar100")
def cifar100(root, download, augment, **kw):
    aug = Augment(crop_padding=4, hflip=True) if augment else None
    return tensor_bundle("cifar100", load_cifar("cifar100", root, download), 100, CIFAR100_MEAN, CIFAR100_STD,
                          aug, **kw)


def _imagenet(name, num_classes, root, seed, val_size, image_size=224, num_workers=8, class_list=None,
              device=None, train_subset=None, test_subset=None, **_):
    factory = imagenet_loader_factory(root, image_size=image_size, num_workers=num_workers,
                                      class_list=class_list, val_fraction=0.01 if val_size else 0.0, seed=seed,
                                      train_subset=train_subset, test_subset=test_subset)
    return DataBundle(name=name, num_classes=num_classes, in_channels=3, image_size=image_size,
                      mean=IMAGENET_MEAN, std=IMAGENET_STD, loader_factory=factory, device=device, seed=seed)


@register_dataset("imagenet")
def imagenet(root, **kw):
    """ImageNet-1K from ``<root>/train`` and ``<root>/val`` ImageFolders."""
    return _imagenet("imagenet", 1000, root, **kw)


@register_dataset("imagenet100")
def imagenet100(root, class_list=None, **kw):
    """ImageNet-100: the CMC 100-class subset (``imagenet100_classes.txt``) of an ImageNet root."""
    from .imagenet import DEFAULT_CLASS_LIST
    return _imagenet("imagenet100", 100, root, class_list=class_list or DEFAULT_CLASS_LIST, **kw)
