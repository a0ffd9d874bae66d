"""A user's dataset: a builder called like flowprune's registered ones, returning a DataBundle."""
import torch

from experiments.data import tensor_bundle


def stripes(root, download, augment, size: int = 16, n_train: int = 1200, n_test: int = 400, **kw):
    """Synthetic 4-class images (horizontal / vertical / two diagonal stripes plus noise), uint8, 1 channel.
    ``root``/``download`` are unused here; a real dataset would read its files under ``root``."""
    g = torch.Generator().manual_seed(1234)

    def make(n):
        y = torch.randint(0, 4, (n,), generator=g)
        i, j = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
        patterns = torch.stack([i % 4 < 2, j % 4 < 2, (i + j) % 4 < 2, (i - j) % 4 < 2]).float()
        x = 0.6 * patterns[y] + 0.4 * torch.rand(n, size, size, generator=g)
        return (x * 255).round().to(torch.uint8).unsqueeze(1), y

    (tx, ty), (vx, vy) = make(n_train), make(n_test)
    return tensor_bundle("stripes", (tx, ty, vx, vy), num_classes=4, mean=(0.5,), std=(0.25,), **kw)
