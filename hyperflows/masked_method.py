"""The unstructured baselines' one method class: binary masks on every Conv2d/Linear weight.

A baseline is composed, not derived: what sets the masks at the prune stage (``initial_masks``: a one-shot
score such as |w|, SNIP's or SynFlow's), what changes them during training (``rules``, each with its schedule
on the method's one :class:`StepClock`; GMP's cubic pruning, RigL's drop/grow, GraNet's regeneration) and its
recipe (``recipe``, ``epochs``: the shared budget, ``lr``). Training goes through ``Method.finetune`` with a
:class:`MaskUpdater`, which owns the masks during the fit; ``finalize`` bakes them into the weights.
A one-shot method (masks chosen once, fixed after) may choose them N:M (``method.pattern``, e.g. 2:4: the top N of
every M weights along a layer's input dim, :mod:`experiments.sparsity.n_of_m`) instead of by a global top-k.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch
from torch import nn

from experiments.errors import ConfigError
from experiments.method import Method
from experiments.sparsity.clock import StepClock
from experiments.sparsity.mask_updater import MaskRule, MaskUpdater
from experiments.sparsity.masks import BinaryMask, attach_masks, current_masks, density, finalize, keep_top, set_masks
from experiments.sparsity.n_of_m import n_of_m_masks, parse_pattern

if TYPE_CHECKING:  # pragma: no cover
    from experiments.context import StageContext
    from experiments.train import Callback

log = logging.getLogger(__name__)

RECIPES = ("pretrain", "finetune")


class MaskedMethod(Method):
    """``target_sparsity``: fraction of prunable weights removed; ``recipe`` null → finetune (pretrain when
    ``from_scratch``); ``epochs`` null → the recipe's (YAML: ``${trainer.finetune.epochs}``, the shared budget);
    ``pattern`` "N:M" (one-shot methods only) → N:M masks, whose sparsity 1 − N/M must be ``target_sparsity``."""

    #: masks chosen once at the prune stage and fixed after (these may be N:M)
    one_shot = False

    def __init__(self, name: str, target_sparsity: float, finetune: bool = True, from_scratch: bool = False,
                 recipe: str | None = None, epochs: int | None = None, lr: float | None = None,
                 pattern: str | None = None):
        super().__init__(name=name, finetune=finetune, lr=lr)
        if not 0.0 <= float(target_sparsity) < 1.0:
            raise ConfigError(f"method.target_sparsity={target_sparsity} must be in [0, 1)")
        recipe = recipe or ("pretrain" if from_scratch else "finetune")
        if recipe not in RECIPES:
            raise ConfigError(f"method.recipe={recipe!r} must be pretrain, finetune or null")
        self.target_sparsity = float(target_sparsity)
        self.pattern = None if pattern is None else parse_pattern(pattern)
        if self.pattern is not None:
            n, m = self.pattern
            if not self.one_shot:
                raise ConfigError(f"method.pattern={pattern} needs a one-shot method (magnitude, snip, grasp); "
                                  f"{name} changes its masks during training: drop method.pattern")
            if abs(self.target_sparsity - (1 - n / m)) > 1e-6:
                raise ConfigError(f"method.pattern={n}:{m} keeps {n} of every {m} weights (sparsity {1 - n / m:g}), "
                                  f"but sparsity.target={target_sparsity}: set sparsity.target={1 - n / m:g}")
        self.needs_dense = not from_scratch
        self.recipe = recipe
        self.epochs = None if epochs is None else int(epochs)
        self.clock = StepClock()
        self.rules: list[MaskRule] = []
        self.updater: MaskUpdater | None = None

    def initial_masks(self, ctx: "StageContext") -> dict[str, torch.Tensor] | None:
        """Masks set at the prune stage (None: keep everything, e.g. GMP starts dense)."""
        return None

    def keep(self, scores: dict[str, torch.Tensor], ctx: "StageContext") -> dict[str, torch.Tensor]:
        """One-shot masks from ``scores`` (higher = keep): the global top (1 − S)·N, or with ``method.pattern``
        the top N of every M per layer (layers that cannot carry it stay dense: ``metrics.pattern_dense_layers``)."""
        if self.pattern is None:
            return keep_top(scores, 1.0 - self.target_sparsity)
        n, m = self.pattern
        masks, dense = n_of_m_masks(scores, n, m)
        ctx.metrics["pattern"] = f"{n}:{m}"
        ctx.metrics["pattern_dense_layers"] = dense
        if dense:
            log.warning("method.pattern=%d:%d: %s stay dense (input size not a multiple of %d)", n, m,
                        ", ".join(dense), m)
        return masks

    def prune(self, ctx: "StageContext") -> None:
        attach_masks(ctx.model, lambda name, layer: BinaryMask(layer.weight))
        masks = self.initial_masks(ctx)
        if masks is not None:
            set_masks(ctx.model, masks)
        ctx.metrics["density_after_prune"] = density(current_masks(ctx.model))
        if "acc_after_prune" not in ctx.metrics:
            ctx.metrics["acc_after_prune"] = ctx.evaluate(ctx.model)["acc"]

    def callbacks(self, ctx: "StageContext") -> list["Callback"]:
        self.updater = MaskUpdater(ctx.model, self.clock, self.rules)
        return [self.updater]

    def fit_options(self, ctx: "StageContext") -> dict:
        return {"phase": "finetune", "recipe": self.recipe, "epochs": self.epochs,
                "optimizer": self.optimizer_overrides()}

    def finalize(self, model: nn.Module) -> nn.Module:
        return finalize(model)
