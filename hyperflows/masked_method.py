"""Base of the unstructured baselines: fixed binary masks on every Conv2d/Linear weight.

``prune`` attaches a ``BinaryMask`` to every prunable layer and sets the masks a subclass chooses
(``initial_masks``); fine-tuning re-applies the masks after every optimizer step (pruned weights and
their momentum stay exactly zero, so a regrown weight starts at zero); ``finalize`` bakes the masks.
Subclasses that change masks during training (GMP, RigL, GraNet) override ``before_step``, which runs
between backward and the optimizer step with the global step count.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from experiments.errors import ConfigError
from experiments.method import Method
from experiments.sparsity.masks import (
    BinaryMask,
    apply_masks_,
    attach_masks,
    current_masks,
    density,
    finalize,
    set_masks,
)
from experiments.train import Callback

if TYPE_CHECKING:  # pragma: no cover
    from experiments.context import StageContext
    from experiments.train import Trainer


class MaskCallback(Callback):
    """Calls the method's ``before_step`` and re-applies the masks after each step."""

    def __init__(self, method: "MaskedMethod"):
        self.method = method

    def on_after_backward(self, trainer: "Trainer") -> None:
        self.method.before_step(trainer)

    def on_after_step(self, trainer: "Trainer") -> None:
        apply_masks_(trainer.model, trainer.optimizer)

    def on_epoch_end(self, trainer: "Trainer", epoch: int, metrics: dict) -> dict:
        return {"density": density(current_masks(trainer.model)), **self.method.epoch_metrics(trainer)}

    def state_dict(self) -> dict:
        return self.method.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.method.load_state_dict(state)


class MaskedMethod(Method):
    """Fixed-mask pruning + fine-tuning; ``target_sparsity`` is the fraction of prunable weights removed."""

    def __init__(self, name: str, target_sparsity: float, finetune: bool = True, from_scratch: bool = False,
                 recipe: str = "finetune", lr: float | None = None):
        super().__init__(name=name, finetune=finetune, lr=lr)
        if not 0.0 <= float(target_sparsity) < 1.0:
            raise ConfigError(f"method.target_sparsity={target_sparsity} must be in [0, 1)")
        self.target_sparsity = float(target_sparsity)
        self.needs_dense = not from_scratch
        self.recipe = recipe

    # -- what subclasses choose ----------------------------------------------------------------------
    def initial_masks(self, ctx: "StageContext") -> dict[str, torch.Tensor] | None:
        """Masks set at the prune stage (None: keep everything, e.g. GMP starts dense)."""
        return None

    def before_step(self, trainer: "Trainer") -> None:
        """Mask updates during training (between backward and the optimizer step)."""

    def epoch_metrics(self, trainer: "Trainer") -> dict:
        return {}

    # -- stages ---------------------------------------------------------------------------------------
    def prune(self, ctx: "StageContext") -> None:
        attach_masks(ctx.model, lambda name, layer: BinaryMask(layer.weight))
        masks = self.initial_masks(ctx)
        if masks is not None:
            set_masks(ctx.model, masks)
        ctx.metrics["density_after_prune"] = density(current_masks(ctx.model))
        if "acc_after_prune" not in ctx.metrics:
            ctx.metrics["acc_after_prune"] = ctx.evaluate(ctx.model)["acc"]

    def callbacks(self, ctx: "StageContext") -> list[Callback]:
        return [MaskCallback(self)]

    def finetune(self, ctx: "StageContext"):
        if not self.do_finetune:
            return None
        return ctx.fit(ctx.model, callbacks=self.callbacks(ctx), phase="finetune", recipe=self.recipe,
                       optimizer=self.optimizer_overrides())

    def finalize(self, model: nn.Module) -> nn.Module:
        return finalize(model)
