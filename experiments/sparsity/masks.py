"""Weight masks shared by Hyperflows and the unstructured baselines.

Every Conv2d/Linear weight (first conv, shortcuts and classifier included; biases and norms never)
gets a ``torch.nn.utils.parametrize`` parametrization whose ``forward(w)`` returns the effective
weight ŵ = w ⊙ m. The original weight stays an ordinary parameter
(``layer.parametrizations.weight.original``), so the weight optimizer, weight decay and state
dicts keep working; ``finalize`` bakes ŵ into a plain ``weight`` and removes the parametrization,
leaving an ordinary model with zeros.

Two mask kinds implement the same small protocol (``current_mask()``):

- ``BinaryMask`` (here): a fixed {0,1} buffer that the baselines rewrite (magnitude, GMP, RigL,
  GraNet, SNIP, SynFlow). With ``tap=True`` it also keeps the dense gradient ∂L/∂ŵ of the last
  backward (RigL/GraNet grow by it; pruned weights included).
- ``FlowMask`` (``flow_mask.py``): Hyperflows' learnable flow parameter t, m = [t ≥ 0].
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn
from torch.nn.utils import parametrize

from experiments.measure import prunable_layers


class _TappedMask(torch.autograd.Function):
    """ŵ = w ⊙ m; backward stores the dense ∂L/∂ŵ on ``holder.dense_grad`` and returns g ⊙ m for w."""

    @staticmethod
    def forward(ctx, w, mask, holder):
        ctx.save_for_backward(mask)
        ctx.holder = holder
        return w * mask

    @staticmethod
    def backward(ctx, g):
        (mask,) = ctx.saved_tensors
        ctx.holder.dense_grad = g.detach()
        return g * mask, None, None


class BinaryMask(nn.Module):
    """A fixed {0,1} mask (a float buffer of the weight's shape, all ones at first)."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", torch.ones_like(weight, memory_format=torch.contiguous_format))
        self.tap = False                       # keep ∂L/∂ŵ of the next backward passes
        self.dense_grad: torch.Tensor | None = None

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if self.tap and torch.is_grad_enabled():
            return _TappedMask.apply(w, self.mask.to(w.dtype), self)
        return w * self.mask.to(w.dtype)

    def current_mask(self) -> torch.Tensor:
        return self.mask.bool()

    @torch.no_grad()
    def set_mask(self, mask: torch.Tensor) -> None:
        self.mask.copy_(mask.to(self.mask.dtype))


# -- attaching, finding and removing masks ------------------------------------------------------
def attach_masks(model: nn.Module, factory: Callable[[str, nn.Module], nn.Module]) -> dict[str, nn.Module]:
    """Parametrize every prunable layer's weight with ``factory(name, layer)``; returns name -> mask."""
    out = {}
    for name, layer in prunable_layers(model).items():
        if parametrize.is_parametrized(layer, "weight"):
            raise ValueError(f"layer {name} already carries a mask; finalize the model first")
        mask = factory(name, layer)
        parametrize.register_parametrization(layer, "weight", mask)
        out[name] = mask
    return out


def mask_modules(model: nn.Module) -> dict[str, nn.Module]:
    """name -> mask parametrization (anything with ``current_mask``) of every masked layer."""
    out = {}
    for name, layer in prunable_layers(model).items():
        if parametrize.is_parametrized(layer, "weight"):
            for p in layer.parametrizations.weight:
                if hasattr(p, "current_mask"):
                    out[name] = p
    return out


def original_weights(model: nn.Module) -> dict[str, nn.Parameter]:
    """name -> the weight parameter every prunable layer trains: the underlying (unmasked) original under a
    mask parametrization, else the plain weight."""
    return {name: layer.parametrizations.weight.original if parametrize.is_parametrized(layer, "weight")
            else layer.weight for name, layer in prunable_layers(model).items()}


def current_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """name -> boolean keep-mask of every masked layer."""
    return {name: m.current_mask() for name, m in mask_modules(model).items()}


@torch.no_grad()
def finalize(model: nn.Module) -> nn.Module:
    """Bake ŵ = w ⊙ m into plain weights and drop every mask parametrization (in place).

    Not ``parametrize.remove_parametrizations``: that deletes the ``weight`` property from the
    generated ``Parametrized*`` class, which a ``copy.deepcopy`` of the model shares, so finalizing a
    copy would break the original. Here each layer gets its plain class back instead; the original
    ``Parameter`` object is kept (optimizers holding it stay valid) and holds ŵ.
    """
    for name, layer in prunable_layers(model).items():
        if not parametrize.is_parametrized(layer, "weight"):
            continue
        if set(layer.parametrizations.keys()) != {"weight"}:
            raise ValueError(f"layer {name} has other parametrized tensors; cannot bake its weight mask")
        baked = layer.weight.detach().clone()
        original = layer.parametrizations.weight.original
        layer.__class__ = layer.__class__.__bases__[0]
        del layer._modules["parametrizations"]
        original.set_(baked)
        layer.register_parameter("weight", original)
    return model


def density(masks: dict[str, torch.Tensor] | Iterable[torch.Tensor]) -> float:
    """Fraction of kept weights over all masks."""
    values = list(masks.values()) if isinstance(masks, dict) else list(masks)
    kept = sum(int(m.sum()) for m in values)
    return kept / max(sum(m.numel() for m in values), 1)


def layer_densities(masks: dict[str, torch.Tensor]) -> dict[str, float]:
    return {name: float(m.float().mean()) for name, m in masks.items()}

@torch.no_grad()
def set_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Write ``masks`` (name -> bool tensor) into the model's BinaryMasks and zero the pruned weights."""
    modules = mask_modules(model)
    missing = set(masks) - set(modules)
    if missing:
        raise KeyError(f"no mask on layers {sorted(missing)}")
    for name, m in masks.items():
        modules[name].set_mask(m)
    apply_masks_(model)


# -- pure rules ---------------------------------------------------------------------------------
def keep_top(scores: dict[str, torch.Tensor], density_: float) -> dict[str, torch.Tensor]:
    """Global top-k: keep the round(density·N) highest scores over all layers (ties broken by topk)."""
    flat = torch.cat([s.detach().flatten().float() for s in scores.values()])
    k = int(round(density_ * flat.numel()))
    keep = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    if k > 0:
        keep[torch.topk(flat, k, sorted=False).indices] = True
    out, i = {}, 0
    for name, s in scores.items():
        out[name] = keep[i:i + s.numel()].view_as(s)
        i += s.numel()
    return out


def global_magnitude_masks(weights: dict[str, torch.Tensor], density_: float) -> dict[str, torch.Tensor]:
    """One-shot global magnitude pruning: keep the largest |w| over all layers."""
    return keep_top({n: w.abs() for n, w in weights.items()}, density_)


@torch.no_grad()
def apply_masks_(model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
    """Zero pruned weights and their momentum (SGD buffers, Adam moments), so a weight that is grown
    back later starts from zero (RigL/GraNet convention) and pruned weights never drift."""
    weights = original_weights(model)
    for name, mask in mask_modules(model).items():
        w = weights[name]
        # float {0,1} (BinaryMask's buffer): a float multiply is much cheaper than one by a bool tensor on CPU
        m = mask.mask if isinstance(mask, BinaryMask) else mask.current_mask().to(w.dtype)
        w.mul_(m)
        mask_optimizer_state_(optimizer, w, m)


@torch.no_grad()
def mask_optimizer_state_(optimizer: torch.optim.Optimizer | None, param: torch.Tensor, keep: torch.Tensor) -> None:
    """Multiply ``param``'s optimizer moments (SGD momentum, Adam's exp_avg/exp_avg_sq) by ``keep``."""
    if optimizer is None:
        return
    state = optimizer.state.get(param, {})
    for key in ("momentum_buffer", "exp_avg", "exp_avg_sq"):
        buf = state.get(key)
        if buf is not None:
            buf.mul_(keep)
