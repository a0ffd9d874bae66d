"""Per-run Hyperflows figures (PNG under the run dir, logged to W&B):

- ``curves``: density vs the scheduler's trajectory, γ/λ, weight flips per epoch, test accuracy;
- ``layer_sparsity``: final sparsity of every layer (global pressure, emergent allocation);
- ``weight_histograms``: active weights at the end of pruning vs after regrowth (paper Fig. 12);
- ``first_layer_mask``: for an MLP on images (LeNet-300), kept input connections as images: the
  count per pixel over all first-layer neurons, and single neurons (paper Fig. 4).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def curves(history: list[dict], path: Path) -> Path:
    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(2, 2, figsize=(10, 7))
    a = ax[0, 0]
    a.plot(ep, [100 * h["density"] if h.get("density") is not None else None for h in history], "o-", ms=3,
           label="measured")
    exp = [(h["epoch"], 100 * h["expected_density"]) for h in history if h.get("expected_density") is not None]
    if exp:
        a.plot(*zip(*exp), "--", label="scheduler trajectory D̂(e)")
    a.set_yscale("log"), a.set_xlabel("epoch"), a.set_ylabel("density (%)"), a.legend(), a.set_title("density")
    a = ax[0, 1]
    if any(h.get("gamma") is not None for h in history):
        a.plot(ep, [h.get("gamma") for h in history], "o-", ms=3, label="γ")
    a.plot(ep, [h.get("lambda") for h in history], "s-", ms=3, label="λ = γ^p (applied)")
    a.set_xlabel("epoch"), a.legend(), a.set_title("pressure")
    a = ax[1, 0]
    a.plot(ep, [h.get("flips_pruned") for h in history], "o-", ms=3, label="active → pruned")
    a.plot(ep, [h.get("flips_regrown") for h in history], "o-", ms=3, label="pruned → active")
    a.set_yscale("symlog"), a.set_xlabel("epoch"), a.set_ylabel("weights"), a.legend(), a.set_title("flips per epoch")
    a = ax[1, 1]
    a.plot(ep, [h.get("test_acc") for h in history], "o-", ms=3, label="test")
    if any("val_acc" in h for h in history):
        a.plot(ep, [h.get("val_acc") for h in history], "o-", ms=3, label="val")
    a.set_xlabel("epoch"), a.set_ylabel("accuracy (%)"), a.legend(), a.set_title("accuracy")
    return _save(fig, path)


def layer_sparsity(layer_density: dict[str, float], path: Path) -> Path:
    names = list(layer_density)
    fig, a = plt.subplots(figsize=(max(6, 0.35 * len(names)), 4))
    a.bar(range(len(names)), [100 * (1 - layer_density[n]) for n in names])
    a.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    a.set_ylabel("sparsity (%)"), a.set_title("layer-wise sparsity")
    return _save(fig, path)


def weight_histograms(before: dict, after: dict, path: Path) -> Path:
    fig, a = plt.subplots(figsize=(7, 4))
    for h, label in ((before, "end of pruning"), (after, "after regrowth")):
        if h and h["counts"]:
            edges = np.asarray(h["edges"])
            a.stairs(h["counts"], edges, label=f"{label} ({sum(h['counts']):,} active)")
    a.set_yscale("log"), a.set_xlabel("weight value"), a.set_ylabel("count"), a.legend()
    a.set_title("active weights before / after regrowth")
    return _save(fig, path)


def first_layer_mask(mask: torch.Tensor, image_shape: tuple[int, int, int], path: Path, neurons: int = 15) -> Path:
    """``mask``: (out, C·H·W) keep-mask of an MLP's first layer."""
    c, h, w = image_shape
    m = mask.detach().cpu().float().view(mask.shape[0], c, h, w).sum(1)  # channels summed
    order = m.flatten(1).sum(1).argsort(descending=True)[:neurons]
    cols = 4
    rows = 1 + (len(order) + cols - 1) // cols
    fig, ax = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.2 * rows))
    for a in ax.flat:
        a.axis("off")
    agg = ax[0, 0].imshow(m.sum(0).numpy(), cmap="viridis")
    ax[0, 0].set_title("kept inputs per pixel", fontsize=8)
    fig.colorbar(agg, ax=ax[0, 0], fraction=0.046)
    for i, idx in enumerate(order.tolist()):
        a = ax.flat[cols + i]
        a.imshow(m[idx].numpy(), cmap="gray_r", vmin=0, vmax=max(c, 1))
        a.set_title(f"neuron {idx}: {int(m[idx].sum())}", fontsize=7)
    return _save(fig, path)


def write_all(figure_path: Callable[[str], Path], history: list[dict], layer_density: dict[str, float],
              hist_prune_end: dict | None, hist_end: dict | None, masks: dict[str, torch.Tensor], image_shape: tuple[int, int, int]) -> dict[str, Path]:
    out = {"curves": curves(history, figure_path("hyperflows_curves.png")),
           "layer_sparsity": layer_sparsity(layer_density, figure_path("hyperflows_layer_sparsity.png"))}
    if hist_prune_end is not None and hist_end is not None:
        out["weight_histograms"] = weight_histograms(hist_prune_end, hist_end,
                                                     figure_path("hyperflows_weight_histograms.png"))
    first = masks[next(iter(masks))]
    if first.ndim == 2 and first.shape[1] == int(np.prod(image_shape)):
        out["first_layer_mask"] = first_layer_mask(first, image_shape, figure_path("hyperflows_first_layer_mask.png"))
    return out
