"""The step clock of a fit: T = epochs × steps per epoch, and how many optimizer steps are done.

One clock per method; its schedules read T from it, the mask updater advances it. It goes into the
resume checkpoint, so a mid-epoch resume knows T and the step without ``on_fit_start``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from experiments.train import Trainer


def fit_steps(trainer: "Trainer") -> int:
    """Total optimizer steps of the fit: epochs × steps per epoch (``max_steps_per_epoch`` applied)."""
    return int(trainer.schedule.epochs) * trainer.steps_per_epoch


class StepClock:
    """``total`` (T, None until the fit starts) and ``done`` (0-based steps taken)."""

    def __init__(self) -> None:
        self.total: int | None = None
        self.done = 0

    @property
    def started(self) -> bool:
        return self.total is not None

    def start(self, trainer: "Trainer") -> None:
        """At the start of a fit (or the first step of a resumed one): T and the step count from the trainer."""
        self.total = fit_steps(trainer)
        self.done = int(trainer.global_step)

    def state_dict(self) -> dict:
        return {"total": self.total, "done": self.done}

    def load_state_dict(self, state: dict) -> None:
        self.total = state.get("total")
        self.done = int(state.get("done", 0))
