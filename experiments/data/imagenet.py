"""ImageNet-1K and ImageNet-100 from an ImageFolder root (no download exists: the user brings the files)."""
from __future__ import annotations

from pathlib import Path

import torch

from .sources import DatasetUnavailable

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: The common ImageNet-100 subset (Tian et al., CMC) ships as a class-list file next to this module.
DEFAULT_CLASS_LIST = Path(__file__).with_name("imagenet100_classes.txt")


def read_class_list(path: str | Path) -> list[str]:
    path = Path(path)
    if not path.exists():
        raise DatasetUnavailable(f"ImageNet-100 class list {path} not found; set dataset.class_list=<file with one wnid per line>")
    classes = [ln.split()[0] for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    if not classes:
        raise DatasetUnavailable(f"dataset.class_list={path} lists no classes")
    return classes


def imagenet_loader_factory(root: str | Path, image_size: int = 224, num_workers: int = 8,
                            class_list: str | Path | None = None, val_fraction: float = 0.0, seed: int = 0,
                            pin_memory: bool = True, train_subset: int | None = None, test_subset: int | None = None):
    """A ``(split, batch_size, train) -> DataLoader`` factory over ``<root>/{train,val}``.

    The ``val`` split here is carved from train (``val_fraction``); ImageNet's official val folder is
    the ``test`` split, as is usual in pruning papers. ``train_subset`` / ``test_subset``: seeded subsets
    of that many images (quick runs, smoke tests).
    """
    from torchvision import datasets, transforms

    root = Path(root)
    for sub in ("train", "val"):
        if not (root / sub).is_dir():
            raise DatasetUnavailable(
                f"ImageNet folder {root / sub} not found; set dataset.root=<dir with train/ and val/ ImageFolders>")
    normalize = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    train_tf = transforms.Compose([transforms.RandomResizedCrop(image_size), transforms.RandomHorizontalFlip(),
                                   transforms.ToTensor(), normalize])
    eval_tf = transforms.Compose([transforms.Resize(int(image_size * 256 / 224)), transforms.CenterCrop(image_size),
                                  transforms.ToTensor(), normalize])
    keep = set(read_class_list(class_list)) if class_list else None

    def folder(sub, tf):
        ds = datasets.ImageFolder(str(root / sub), transform=tf)
        if keep is not None:
            remap = {ds.class_to_idx[c]: i for i, c in enumerate(sorted(keep)) if c in ds.class_to_idx}
            if len(remap) != len(keep):
                missing = sorted(keep - set(ds.class_to_idx))[:3]
                raise DatasetUnavailable(f"classes {missing}... of dataset.class_list missing under {root / sub}")
            ds.samples = [(p, remap[t]) for p, t in ds.samples if t in remap]
            ds.targets = [t for _, t in ds.samples]
        return ds

    cache: dict = {}

    def factory(split: str, batch_size: int, train: bool):
        if split not in cache:
            gen = torch.Generator().manual_seed(seed)
            if split == "test":
                full = folder("val", eval_tf)
                idx = torch.randperm(len(full), generator=gen).tolist()[:test_subset] if test_subset else None
                cache[split] = full if idx is None else torch.utils.data.Subset(full, idx)
            else:
                full = folder("train", train_tf if split == "train" else eval_tf)
                n_val = int(len(full) * val_fraction)
                perm = torch.randperm(len(full), generator=gen).tolist()
                idx = perm[:n_val] if split == "val" else perm[n_val:][:train_subset or None]
                cache[split] = torch.utils.data.Subset(full, idx)
        return torch.utils.data.DataLoader(cache[split], batch_size=batch_size, shuffle=train, drop_last=train,
                                           num_workers=num_workers, pin_memory=pin_memory,
                                           persistent_workers=num_workers > 0)

    return factory
