"""The hook points methods plug into the training loop.

A method (Hyperflows, GMP, RigL, GraNet ...) subclasses ``Callback`` and overrides what it needs:

- ``optimizers(trainer)``: extra optimizers (e.g. Adam on flow parameters) with their own LR schedule;
  their parameters are excluded from the main (weight) optimizer.
- ``extra_loss(trainer)``: a term added to the data loss each step (e.g. the pressure loss).
- ``on_after_backward`` / ``on_after_step``: between backward and step (gradient surgery, RigL grow
  scores) and after all optimizers stepped (re-apply masks, mask momentum).
- ``on_epoch_start`` / ``on_epoch_end``: schedules, γ updates, instrumentation; ``on_epoch_end``
  returns extra metrics logged with the epoch.
- ``state_dict`` / ``load_state_dict``: method state for checkpoint/resume.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # pragma: no cover
    from .schedule import LRSchedule
    from .trainer import Trainer


@dataclass
class ExtraOptimizer:
    optimizer: torch.optim.Optimizer
    schedule: "LRSchedule | None" = None  # None: the method manages this optimizer's LR itself
    name: str = "extra"
    #: the method applies this optimizer's update inside backward (its params get no .grad): the trainer schedules
    #: its LR and checkpoints its state but neither zeroes nor steps it
    in_backward: bool = False


class Callback:
    def optimizers(self, trainer: "Trainer") -> list[ExtraOptimizer]:
        return []

    def on_fit_start(self, trainer: "Trainer") -> None:
        pass

    def on_epoch_start(self, trainer: "Trainer", epoch: int) -> None:
        pass

    def extra_loss(self, trainer: "Trainer") -> torch.Tensor | None:
        return None

    def on_after_backward(self, trainer: "Trainer") -> None:
        pass

    def on_after_step(self, trainer: "Trainer") -> None:
        pass

    def on_epoch_end(self, trainer: "Trainer", epoch: int, metrics: dict) -> dict | None:
        return None

    def on_fit_end(self, trainer: "Trainer") -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
