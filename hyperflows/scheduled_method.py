"""Base of the GMP / RigL / GraNet / SNIP / SynFlow baselines: scheduled mask updates on a step clock.

On top of ``MaskedMethod`` (binary masks re-applied after every optimizer step) this adds what the
scheduled baselines share:

- the shared epoch budget: every baseline trains ``epochs`` (``${trainer.finetune.epochs}``) epochs, also when it
  trains from scratch with the ``pretrain`` recipe's optimizer and LR schedule (``recipe: pretrain``;
  ``ctx.fit`` would otherwise take the pretrain recipe's own epoch count);
- the step clock: T = fit epochs × steps per epoch (``len(train_loader)`` capped by
  ``trainer.max_steps_per_epoch``); a subclass says which 0-based steps update the masks
  (``is_update_step``) and how (``update_masks``, called between backward and the optimizer step);
- the dense-gradient tap, switched on only for the forward/backward of update steps (RigL, GraNet);
- ``state_dict``: the step clock and the subclass's counters go into the resume checkpoint; on a
  mid-epoch resume the tap is set again from the restored clock.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from experiments.errors import ConfigError
from experiments.sparsity.drop_grow import set_tap
from experiments.sparsity.masks import mask_modules, original_weights

from .masked_method import MaskCallback, MaskedMethod

if TYPE_CHECKING:  # pragma: no cover
    from experiments.context import StageContext
    from experiments.train import Callback, FitResult, Trainer


def fit_steps(trainer: "Trainer") -> int:
    """Total optimizer steps of the fit: epochs × steps per epoch."""
    return int(trainer.schedule.epochs) * trainer.steps_per_epoch


class BaselineCallback(MaskCallback):
    """``MaskCallback`` that also tells the method when the fit starts and ends (step clock, tap)."""

    def on_fit_start(self, trainer: "Trainer") -> None:
        self.method.on_fit_start(trainer)

    def on_fit_end(self, trainer: "Trainer") -> None:
        self.method.on_fit_end(trainer)


class ScheduledMaskedMethod(MaskedMethod):
    """A ``MaskedMethod`` whose masks change at scheduled steps of the fine-tune fit."""

    #: the update rule reads ∂L/∂ŵ (pruned weights included) from the masks' tap
    uses_dense_grad: bool = False

    def __init__(self, name: str, target_sparsity: float, epochs: int, finetune: bool = True,
                 from_scratch: bool = False, recipe: str | None = None, lr: float | None = None):
        recipe = recipe or ("pretrain" if from_scratch else "finetune")
        if recipe not in ("pretrain", "finetune"):
            raise ConfigError(f"method.recipe={recipe!r} must be pretrain, finetune or null")
        super().__init__(name=name, target_sparsity=target_sparsity, finetune=finetune,
                         from_scratch=from_scratch, recipe=recipe, lr=lr)
        self.epochs = int(epochs)             # the shared budget (YAML: ${trainer.finetune.epochs})
        self.total_steps: int | None = None   # T, set when the fit starts (or restored)
        self.steps_done = 0                   # optimizer steps taken in the fit
        self.updates = 0                      # mask updates done
        self.masks: dict[str, torch.nn.Module] = {}

    # -- what subclasses choose ----------------------------------------------------------------------
    def is_update_step(self, step: int) -> bool:
        """Whether the 0-based fit step ``step`` updates the masks (``total_steps`` is known here)."""
        return False

    def update_masks(self, trainer: "Trainer", step: int) -> None:
        """Change the masks at ``step``; runs after that step's backward, before its optimizer step."""

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    # -- stages ---------------------------------------------------------------------------------------
    def prune(self, ctx: "StageContext") -> None:
        super().prune(ctx)
        self.masks = mask_modules(ctx.model)

    def callbacks(self, ctx: "StageContext") -> list["Callback"]:
        return [BaselineCallback(self)]

    def finetune(self, ctx: "StageContext") -> "FitResult | None":
        """Train with ``self.recipe``'s optimizer and schedule for the shared budget ``epochs``."""
        if not self.do_finetune:
            return None
        return ctx.fit(ctx.model, callbacks=self.callbacks(ctx), phase="finetune", recipe=self.recipe,
                       epochs=self.epochs, optimizer=self.optimizer_overrides())

    # -- the step clock -------------------------------------------------------------------------------
    def on_fit_start(self, trainer: "Trainer") -> None:
        self.total_steps = fit_steps(trainer)
        self.steps_done = trainer.global_step
        self._set_tap_for(self.steps_done)

    def on_fit_end(self, trainer: "Trainer") -> None:
        set_tap(self.masks, False)

    def before_step(self, trainer: "Trainer") -> None:
        if self.total_steps is None:
            self.total_steps = fit_steps(trainer)
        step = int(trainer.global_step)
        if self.is_update_step(step):
            self.update_masks(trainer, step)
            self.updates += 1
        self.steps_done = step + 1
        self._set_tap_for(self.steps_done)

    def _set_tap_for(self, step: int) -> None:
        if self.uses_dense_grad and self.masks:
            set_tap(self.masks, self.total_steps is not None and self.is_update_step(step))

    def weights_and_masks(self, model) -> tuple[dict, dict]:
        """name -> original weight parameter, name -> current boolean mask."""
        weights = original_weights(model)
        return weights, {n: m.current_mask() for n, m in self.masks.items()}

    # -- state ----------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"total_steps": self.total_steps, "steps_done": self.steps_done, "updates": self.updates,
                **self.extra_state()}

    def load_state_dict(self, state: dict) -> None:
        if not state:
            return
        self.total_steps = state.get("total_steps")
        self.steps_done = int(state.get("steps_done", 0))
        self.updates = int(state.get("updates", 0))
        self.load_extra_state(state)
        self._set_tap_for(self.steps_done)  # a mid-epoch resume gets no on_fit_start/on_epoch_start
