"""The interface a pruning method implements to plug into the pipeline.

The core never imports a method package: ``conf/method/<name>.yaml`` names a subclass of ``Method``
by ``_target_`` and the pipeline calls its stage functions in order. The base class is the ``dense``
method: no pruning, optional fine-tuning (the "dense + same extra fine-tuning" control).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from .errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from .context import StageContext
    from .train import Callback, FitResult


class Method:
    """Stage functions; each reads/writes ``ctx`` (``ctx.model``, ``ctx.metrics``, ``ctx.checkpoints``)."""

    #: ``True`` when the method starts from the trained dense model (pretrain stage output);
    #: at-initialisation methods (SNIP, SynFlow, from-scratch controls) set it to ``False``.
    needs_dense: bool = True

    def __init__(self, name: str = "dense", finetune: bool = False, lr: float | None = None):
        self.name = name
        self.do_finetune = finetune
        if lr is not None and not (float(lr) > 0 and float(lr) < float("inf")):
            raise ConfigError(f"method.lr={lr} must be a finite number > 0 (or null for the recipe's)")
        #: weight learning rate of this method's training stage (None: the recipe's); the study's LR grid sets it
        self.lr = None if lr is None else float(lr)

    def optimizer_overrides(self) -> dict:
        """What this method changes in its recipe's optimizer (``method.lr``)."""
        return {} if self.lr is None else {"lr": self.lr}

    def calibrate(self, ctx: "StageContext") -> None:
        """Collect statistics (activations, gradients) before pruning."""

    def prune(self, ctx: "StageContext") -> None:
        """Remove or mask weights/units of ``ctx.model`` (may replace it)."""

    def callbacks(self, ctx: "StageContext") -> list["Callback"]:
        """Hook points for the fine-tune/regrow loop."""
        return []

    def fit_options(self, ctx: "StageContext") -> dict:
        """Keyword arguments of ``ctx.fit`` for this method's training stage: its recipe (``phase``, ``recipe``,
        ``epochs``, ``schedule_phases``, ``optimizer``, ``label_smoothing``); the default is the finetune recipe
        with ``method.lr``."""
        return {"phase": "finetune", "optimizer": self.optimizer_overrides()}

    def before_finetune(self, ctx: "StageContext") -> None:
        """Runs right before the training stage (e.g. re-initialise a from-scratch control)."""

    def after_finetune(self, ctx: "StageContext", result: "FitResult | None") -> None:
        """Runs after the training stage (``result`` is None when ``finetune`` is off)."""

    def finetune(self, ctx: "StageContext") -> "FitResult | None":
        """The one training path: ``fit_options``' recipe with ``callbacks``, between the two hooks."""
        self.before_finetune(ctx)
        result = (ctx.fit(ctx.model, callbacks=self.callbacks(ctx), **self.fit_options(ctx))
                  if self.do_finetune else None)
        self.after_finetune(ctx, result)
        return result

    def finalize(self, model: nn.Module) -> nn.Module:
        """An ordinary ``nn.Module`` (masks baked in) for measurement and export."""
        return model
