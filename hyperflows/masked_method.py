"""The unstructured baselines' one method class: binary masks on every Conv2d/Linear weight.

A baseline is composed, not derived: what sets the masks at the prune stage (``initial_masks``: a one-shot
score such as |w|, SNIP's or SynFlow's), what changes them during training (``rules``, each with its schedule
on the method's one :class:`StepClock`; GMP's cubic pruning, RigL's drop/grow, GraNet's regeneration) and its
recipe (``recipe``, ``epochs``: the shared budget, ``lr``). Training goes through ``Method.finetune`` with a
:class:`MaskUpdater`, which owns the masks during the fit; ``finalize`` bakes them into the weights.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from experiments.errors import ConfigError
from experiments.method import Method
from experiments.sparsity.clock import StepClock
from experiments.sparsity.mask_updater import MaskRule, MaskUpdater
from experiments.sparsity.masks import BinaryMask, attach_masks, current_masks, density, finalize, set_masks

if TYPE_CHECKING:  # pragma: no cover
    from experiments.context import StageContext
    from experiments.train import Callback

RECIPES = ("pretrain", "finetune")


class MaskedMethod(Method):
    """``target_sparsity``: fraction of prunable weights removed; ``recipe`` null → finetune (pretrain when
    ``from_scratch``); ``epochs`` null → the recipe's (YAML: ``${trainer.finetune.epochs}``, the shared budget)."""

    def __init__(self, name: str, target_sparsity: float, finetune: bool = True, from_scratch: bool = False,
                 recipe: str | None = None, epochs: int | None = None, lr: float | None = None):
        super().__init__(name=name, finetune=finetune, lr=lr)
        if not 0.0 <= float(target_sparsity) < 1.0:
            raise ConfigError(f"method.target_sparsity={target_sparsity} must be in [0, 1)")
        recipe = recipe or ("pretrain" if from_scratch else "finetune")
        if recipe not in RECIPES:
            raise ConfigError(f"method.recipe={recipe!r} must be pretrain, finetune or null")
        self.target_sparsity = float(target_sparsity)
        self.needs_dense = not from_scratch
        self.recipe = recipe
        self.epochs = None if epochs is None else int(epochs)
        self.clock = StepClock()
        self.rules: list[MaskRule] = []
        self.updater: MaskUpdater | None = None

    def initial_masks(self, ctx: "StageContext") -> dict[str, torch.Tensor] | None:
        """Masks set at the prune stage (None: keep everything, e.g. GMP starts dense)."""
        return None

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
