"""Test-only methods for the DDP tests. ``ActivationMaskMethod``: its drop/grow scores depend on each rank's data shard,
so masks agree across ranks only because the scores go through ``experiments.distributed.all_reduce_``."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from torch import nn

from experiments.distributed import all_reduce_, rank
from experiments.method import Method
from experiments.sparsity.masks import current_masks
from experiments.train import Callback
from hyperflows.method import Hyperflows
from hyperflows.rigl import RigL


def _digest(t: torch.Tensor) -> str:
    return hashlib.sha1(t.to(torch.uint8).cpu().numpy().tobytes()).hexdigest()[:16]


class _ActivationMasks(Callback):
    """Every epoch: mask = top-``density`` of |w| x (mean |input| of the layer on the batches seen)."""

    def __init__(self, ctx, density: float):
        self.ctx, self.density = ctx, density
        self.layers = [m for m in ctx.model.modules() if isinstance(m, nn.Linear)]
        self.act = [torch.zeros(m.in_features) for m in self.layers]
        self.masks = [torch.ones_like(m.weight, dtype=torch.bool) for m in self.layers]
        self.record: dict = {}
        for i, m in enumerate(self.layers):
            m.register_forward_hook(self._hook(i))

    def _hook(self, i):
        def hook(module, inputs, output):
            if module.training:
                self.act[i] += inputs[0].detach().abs().sum(0).cpu()
        return hook

    def on_after_step(self, trainer):
        with torch.no_grad():
            for m, mask in zip(self.layers, self.masks):
                m.weight.mul_(mask)

    def on_epoch_end(self, trainer, epoch, metrics):
        for i, (m, act) in enumerate(zip(self.layers, self.act)):
            local = m.weight.detach().abs().cpu() * act[None, :]
            reduced = all_reduce_(local.clone(), "mean")       # what every rank must agree on
            k = int(self.density * local.numel())
            pick = lambda s: torch.zeros(s.numel(), dtype=torch.bool).index_fill_(0, s.flatten().topk(k).indices, True).view_as(s)
            self.masks[i] = pick(reduced).to(m.weight.device)
            self.record[f"epoch{epoch}/layer{i}"] = {"reduced": _digest(self.masks[i]), "local": _digest(pick(local)),
                                "mask": self.masks[i].flatten().nonzero().flatten().tolist()}
            act.zero_()
        self.on_after_step(trainer)
        (self.ctx.results_dir / f"masks-rank{rank()}.json").write_text(json.dumps(self.record))
        return {"density": self.density}


class ActivationMaskMethod(Method):
    def __init__(self, name: str = "ddp_mask", finetune: bool = True, density: float = 0.5, lr: float | None = None):
        super().__init__(name=name, finetune=finetune, lr=lr)
        self.density = density

    def callbacks(self, ctx):
        return [_ActivationMasks(ctx, self.density)]


def _dump_masks(model: nn.Module) -> None:
    """Write this rank's mask digests (and kept counts) to $MASK_DUMP_DIR/masks-rank<r>.json."""
    masks = current_masks(model)
    out = {name: {"digest": _digest(m), "kept": int(m.sum()), "numel": m.numel()} for name, m in masks.items()}
    Path(os.environ["MASK_DUMP_DIR"], f"masks-rank{rank()}.json").write_text(json.dumps(out))


class _DumpMasks:
    """Mixin: record each rank's final masks before ``finalize`` bakes them."""

    def finalize(self, model: nn.Module) -> nn.Module:
        _dump_masks(model)
        return super().finalize(model)


class DumpingHyperflows(_DumpMasks, Hyperflows):
    pass


class DumpingRigL(_DumpMasks, RigL):
    pass


class BuggyMethod(Method):
    """A method with a genuine bug (not a user error): the CLI must keep its traceback."""

    def prune(self, ctx):
        return {}["missing"]


class ValueBugMethod(Method):
    """A genuine bug that raises a builtin ValueError: before the project's own error types, any ValueError was
    taken for a user error and its traceback dropped."""

    def prune(self, ctx):
        return float("not a number")
