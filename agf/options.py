"""``method.calibration`` of structural pruning: one frozen dataclass, the single source of its defaults."""
from __future__ import annotations

from dataclasses import dataclass

from experiments.errors import ConfigError

MODES = ("eval", "train")
LABEL_MODES = ("true", "predicted")
POSITIONS = ("consumer_input", "pre_activation")


@dataclass(frozen=True)
class Calibration:
    """T batches of ``batch_size`` (the paper's sparse calibration, T = 10), BN in eval (running statistics) or
    train mode, an optional SGD step between batches (``trajectory_lr``, spec §7 #3), true or predicted labels,
    ``splits`` disjoint subsets for selection stability, where the activation is read (spec §7 #1)."""

    batches: int = 10
    batch_size: int = 128
    mode: str = "eval"
    trajectory_lr: float = 0.0
    label_mode: str = "true"
    splits: int = 1
    seed_offset: int = 1000
    position: str = "consumer_input"

    def __post_init__(self):
        for key, value, allowed in (("mode", self.mode, MODES), ("label_mode", self.label_mode, LABEL_MODES),
                                    ("position", self.position, POSITIONS)):
            if value not in allowed:
                raise ConfigError(f"method.calibration.{key}={value!r}; use {' or '.join(allowed)}")
        if self.batches < 1 or self.batch_size < 1 or self.splits < 1:
            raise ConfigError(f"method.calibration: batches={self.batches}, batch_size={self.batch_size} and "
                              f"splits={self.splits} must be >= 1")
