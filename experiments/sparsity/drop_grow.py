"""Drop/grow rules of the dynamic baselines (RigL, GraNet) and GMP's monotone global prune.

Pure tensor functions (masks are boolean tensors of the weight's shape) plus the two small helpers
that touch a model: reading the dense gradient ∂L/∂ŵ that ``BinaryMask(tap=True)`` kept (averaged
over DDP ranks so every rank takes the same decision), and resetting grown weights to zero.
"""
from __future__ import annotations

import torch
from torch import nn

from experiments.distributed import all_reduce_

from .masks import keep_top, mask_optimizer_state_, set_masks


# -- pure rules -----------------------------------------------------------------------------------
def drop_smallest(mask: torch.Tensor, score: torch.Tensor, n: int) -> torch.Tensor:
    """``mask`` with its ``n`` active entries of smallest ``score`` switched off (n capped at #active)."""
    flat = mask.flatten()
    n = min(int(n), int(flat.sum()))
    out = flat.clone()
    if n > 0:
        s = torch.where(flat, score.flatten().float(), torch.full_like(flat, float("inf"), dtype=torch.float))
        out[torch.topk(s, n, largest=False).indices] = False
    return out.view_as(mask)


def grow_largest(mask: torch.Tensor, score: torch.Tensor, n: int) -> torch.Tensor:
    """``mask`` with its ``n`` inactive entries of largest ``score`` switched on (n capped at #inactive)."""
    flat = mask.flatten()
    n = min(int(n), int((~flat).sum()))
    out = flat.clone()
    if n > 0:
        s = torch.where(flat, torch.full_like(flat, float("-inf"), dtype=torch.float), score.flatten().float())
        out[torch.topk(s, n).indices] = True
    return out.view_as(mask)


def drop_and_grow(mask: torch.Tensor, weight: torch.Tensor, grad: torch.Tensor, n: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """One layer's RigL / GraNet-regeneration update: drop the ``n`` active weights of smallest |w|, then
    grow ``n`` weights of largest |∂L/∂ŵ| among the inactive ones *after* the drop (a just-dropped weight
    may come straight back, as in rigl-torch and GraNet). Returns (mask after drop, new mask); the active
    count is unchanged."""
    after_drop = drop_smallest(mask, weight.detach().abs(), n)
    n_dropped = int(mask.sum()) - int(after_drop.sum())
    return after_drop, grow_largest(after_drop, grad.detach().abs(), n_dropped)


def global_magnitude_prune(weights: dict[str, torch.Tensor], masks: dict[str, torch.Tensor],
                           density: float) -> dict[str, torch.Tensor]:
    """Keep the round(density·N) largest |w| over all layers *among the active weights* (GMP: a pruned
    weight never comes back, even when an active one is exactly zero)."""
    scores = {n: torch.where(masks[n], weights[n].detach().abs().float(), torch.full_like(weights[n], -1.0,
                                                                                            dtype=torch.float))
              for n in masks}
    active = sum(int(m.sum()) for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    return keep_top(scores, min(density, active / max(total, 1)))


# -- model helpers --------------------------------------------------------------------------------
def set_tap(mask_modules: dict[str, nn.Module], on: bool) -> None:
    """Switch the dense-gradient tap of every ``BinaryMask`` on or off (off also frees the last gradient)."""
    for m in mask_modules.values():
        m.tap = bool(on)
        if not on:
            m.dense_grad = None


def dense_gradients(mask_modules: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    """name -> ∂L/∂ŵ of the last backward (pruned weights included), averaged over DDP ranks."""
    out = {}
    for name, m in mask_modules.items():
        g = getattr(m, "dense_grad", None)
        if g is None:
            raise RuntimeError(f"layer {name} has no dense gradient: the mask's tap was off during the last "
                               f"backward (turn it on one step before a drop/grow update)")
        out[name] = all_reduce_(g.detach().float().clone(), "mean")
    return out


@torch.no_grad()
def reset_grown_(weight: torch.Tensor, grown: torch.Tensor, optimizer: torch.optim.Optimizer | None) -> None:
    """Grown weights start at zero: zero the weight, its current gradient and its optimizer moments at
    ``grown``, so the optimizer step that follows leaves them at exactly zero (RigL's zero init)."""
    keep = (~grown).to(weight.dtype)
    weight.mul_(keep)
    if weight.grad is not None:
        weight.grad.mul_(keep)
    mask_optimizer_state_(optimizer, weight, keep)


def drop_and_grow_layers(model: nn.Module, optimizer: torch.optim.Optimizer | None, weights: dict[str, torch.Tensor],
                         masks: dict[str, torch.Tensor], grads: dict[str, torch.Tensor],
                         counts: dict[str, int]) -> tuple[int, int]:
    """Per layer, drop ``counts[name]`` smallest-|w| active weights and grow as many by |dense gradient|
    (RigL's update, GraNet's regeneration); write the masks and start grown weights at zero.
    Returns (weights dropped, weights newly grown)."""
    new, dropped, grown = {}, 0, 0
    for name, mask in masks.items():
        after_drop, new[name] = drop_and_grow(mask, weights[name], grads[name], counts[name])
        dropped += int(mask.sum() - after_drop.sum())
        grown += int((new[name] & ~mask).sum())
    set_masks(model, new)
    for name in new:
        reset_grown_(weights[name], new[name] & ~masks[name], optimizer)
    return dropped, grown
