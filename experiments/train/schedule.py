"""Learning-rate schedules as pure functions of the epoch, with phase resets.

A schedule is a list of phases; each phase runs ``epochs`` epochs from ``lr`` following ``kind``
(cosine to ``final_lr``, multistep at fractional ``milestones``, linear, constant). A second phase
resets the LR (Hyperflows' regrowth stage: weight LR reset, then cosine again).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

from ..errors import ConfigError

KINDS = ("cosine", "multistep", "constant", "linear")


@dataclass(frozen=True)
class Phase:
    epochs: int
    lr: float
    kind: str = "cosine"
    final_lr: float = 0.0
    milestones: Sequence[float] = field(default_factory=lambda: (0.5, 0.75))
    gamma: float = 0.1
    warmup_epochs: int = 0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"schedule kind {self.kind!r} is not one of {KINDS}")
        if self.epochs < 0:
            raise ConfigError(f"schedule phase epochs must be >= 0, got {self.epochs}")

    def lr_at(self, e: int) -> float:
        """LR for epoch ``e`` (0-based) inside this phase."""
        if self.warmup_epochs and e < self.warmup_epochs:
            return self.lr * (e + 1) / (self.warmup_epochs + 1)
        n = max(self.epochs - self.warmup_epochs, 1)
        k = e - self.warmup_epochs
        if self.kind == "constant":
            return self.lr
        if self.kind == "cosine":
            return self.final_lr + 0.5 * (self.lr - self.final_lr) * (1 + math.cos(math.pi * k / n))
        if self.kind == "linear":
            return self.lr + (self.final_lr - self.lr) * k / n
        drops = sum(1 for m in self.milestones if k >= int(m * n))
        return self.lr * self.gamma ** drops


@dataclass(frozen=True)
class LRSchedule:
    phases: tuple[Phase, ...]

    @property
    def epochs(self) -> int:
        return sum(p.epochs for p in self.phases)

    def lr_at(self, epoch: int) -> float:
        """LR of 0-based ``epoch``; past the last phase the last LR is held."""
        for phase in self.phases:
            if epoch < phase.epochs:
                return phase.lr_at(epoch)
            epoch -= phase.epochs
        last = self.phases[-1]
        return last.lr_at(max(last.epochs - 1, 0))


def create_schedule(epochs: int, lr: float, name: str = "cosine", final_lr: float = 0.0,
                    milestones: Sequence[float] = (0.5, 0.75), gamma: float = 0.1, warmup_epochs: int = 0,
                    phases: Sequence[dict] | None = None) -> LRSchedule:
    """One-phase schedule from trainer config, or explicit ``phases`` (list of Phase kwargs)."""
    if phases:
        return LRSchedule(tuple(Phase(**dict(p)) for p in phases))
    return LRSchedule((Phase(epochs=int(epochs), lr=float(lr), kind=name, final_lr=float(final_lr),
                             milestones=tuple(milestones), gamma=float(gamma), warmup_epochs=int(warmup_epochs)),))
