"""The one object that owns a model's binary masks during a fit and their per-step hook.

A method composes it from a :class:`~experiments.sparsity.clock.StepClock` and its update rules
(:class:`MaskRule`: what changes the masks, with its schedule inside). Per optimizer step, between backward
and the optimizer step, every rule due at that step runs in order (GraNet: prune, then regenerate); after the
step the masks are re-applied (pruned weights and their momentum stay exactly zero). The dense-gradient tap
is on only for the forward/backward of steps where a rule that reads ∂L/∂ŵ is due.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, Sequence

import torch
from torch import nn

from experiments.train import Callback

from .clock import StepClock
from .drop_grow import set_tap
from .masks import apply_masks_, current_masks, density, mask_modules

if TYPE_CHECKING:  # pragma: no cover
    from experiments.train import Trainer


class MaskRule(Protocol):
    """What changes the masks and when (its schedule)."""

    #: the rule reads ∂L/∂ŵ (pruned weights included) from the masks' tap
    uses_dense_grad: bool

    def is_step(self, step: int) -> bool: ...

    def apply(self, model: nn.Module, optimizer: torch.optim.Optimizer, masks: dict[str, nn.Module],
              step: int) -> None: ...

    def metrics(self) -> dict: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


class MaskUpdater(Callback):
    """Runs ``rules`` on ``model``'s ``BinaryMask`` s on the ``clock``; per-epoch density + the rules' metrics."""

    def __init__(self, model: nn.Module, clock: StepClock, rules: Sequence[MaskRule] = ()):
        self.masks = mask_modules(model)
        self.clock = clock
        self.rules = list(rules)
        self.updates = 0          # steps at which at least one rule changed the masks

    def is_update_step(self, step: int) -> bool:
        """Whether some rule changes the masks at the 0-based fit step ``step``."""
        return any(rule.is_step(step) for rule in self.rules)

    def on_fit_start(self, trainer: "Trainer") -> None:
        self.clock.start(trainer)
        self._tap_for(self.clock.done)

    def on_fit_end(self, trainer: "Trainer") -> None:
        set_tap(self.masks, False)

    def on_after_backward(self, trainer: "Trainer") -> None:
        if not self.clock.started:
            self.clock.start(trainer)
        step = int(trainer.global_step)
        due = [rule for rule in self.rules if rule.is_step(step)]
        for rule in due:
            rule.apply(trainer.model, trainer.optimizer, self.masks, step)
        self.updates += bool(due)
        self.clock.done = step + 1
        self._tap_for(self.clock.done)

    def on_after_step(self, trainer: "Trainer") -> None:
        apply_masks_(trainer.model, trainer.optimizer)

    def on_epoch_end(self, trainer: "Trainer", epoch: int, metrics: dict) -> dict:
        out = {"density": density(current_masks(trainer.model))}
        for rule in self.rules:
            out.update(rule.metrics())
        return out

    def _tap_for(self, step: int) -> None:
        if self.masks and any(rule.uses_dense_grad for rule in self.rules):
            set_tap(self.masks, self.clock.started and any(rule.uses_dense_grad and rule.is_step(step)
                                                          for rule in self.rules))

    def state_dict(self) -> dict:
        return {"clock": self.clock.state_dict(), "updates": self.updates,
                "rules": [rule.state_dict() for rule in self.rules]}

    def load_state_dict(self, state: dict) -> None:
        if not state:
            return
        self.clock.load_state_dict(state["clock"])
        self.updates = int(state.get("updates", 0))
        for rule, s in zip(self.rules, state.get("rules", [])):
            rule.load_state_dict(s)
        self._tap_for(self.clock.done)   # a mid-epoch resume gets no on_fit_start
