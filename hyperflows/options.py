"""Hyperflows' option groups (``method.pressure``, ``method.scheduler``, ``method.regrowth``, ``method.weights``):
one frozen dataclass each, the single source of their defaults (spec §5; the YAML only overrides or repeats)."""
from __future__ import annotations

from dataclasses import dataclass, replace

from experiments.errors import ConfigError

#: ``scheduler.updates_per_epoch=auto``: about this many Algorithm-1 updates over the pruning stage
#: (the paper's E_p = 100 gives one per epoch; a 10-epoch CPU proxy gets 4 per epoch)
MIN_SCHEDULER_UPDATES = 40
CONTROLS = ("closed_loop", "open_loop")


@dataclass(frozen=True)
class Pressure:
    """λ = γ^exponent (eq. 10); only flows t > −threshold are pressured; ``fixed_lambda`` turns the scheduler off."""

    exponent: float = 1.5
    threshold: float | None = None
    fixed_lambda: float | None = None


@dataclass(frozen=True)
class Control:
    """Algorithm 1 (s, A, r_e, ρ) and how density is controlled through regrowth (module docstring of
    :mod:`hyperflows.method`)."""

    control: str = "closed_loop"
    snap_tolerance: float = 0.001
    settle_epochs: int = 0               # closed loop: snap at the start of the last N epochs, then train with frozen masks
    step_size: float = 0.2
    aggressivity: float = 6.0
    end_retention: float = 0.999
    regrowth_offset: float = 0.813       # ρ calibrated on the Fashion-MNIST proxies; the paper's CIFAR value is 11.5/13
    updates_per_epoch: int | str = "auto"

    def __post_init__(self):
        if self.control not in CONTROLS:
            raise ConfigError(f"method.scheduler.control={self.control!r}; use closed_loop or open_loop")
        if not isinstance(self.settle_epochs, int) or self.settle_epochs < 0:
            raise ConfigError(f"method.scheduler.settle_epochs={self.settle_epochs!r} must be an integer >= 0")
        k = self.updates_per_epoch
        if k != "auto" and (not isinstance(k, int) or k < 1):
            raise ConfigError(f"method.scheduler.updates_per_epoch={k!r} must be auto or an integer >= 1")

    def ticks(self, pruning_epochs: int) -> int:
        """Algorithm-1 updates per epoch (1 = the paper)."""
        if self.updates_per_epoch == "auto":
            return max(1, round(MIN_SCHEDULER_UPDATES / pruning_epochs))
        return int(self.updates_per_epoch)


@dataclass(frozen=True)
class Regrowth:
    """The regrowth stage's t-LR (eq. 12: κ·η_t·δ^(e − first_power), 0 after ``flow_lr_zero_after`` epochs) and
    its start (``start_delay`` extra pressured epochs: the authors' code uses 1)."""

    flow_lr_scale: float = 5.0
    flow_lr_decay: float = 0.75
    flow_lr_zero_after: int = 50
    flow_lr_first_power: int = 0
    start_delay: int = 0

    def __post_init__(self):
        if self.start_delay < 0:
            raise ConfigError(f"method.regrowth.start_delay={self.start_delay} must be >= 0")


@dataclass(frozen=True)
class WeightRecipe:
    """SGD on the weights, one cosine per phase: η_w^0 → η_w^1 while pruning, η_w^2 → η_w^3 in regrowth."""

    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    no_decay_bias_norm: bool = False   # true: biases and norm scales skip weight decay (a ViT's AdamW recipe)
    lr_prune_start: float = 0.1
    lr_prune_end: float = 0.01 / 3
    lr_regrow_start: float = 1e-3
    lr_regrow_end: float = 1e-4

    def scaled_to(self, lr: float) -> "WeightRecipe":
        """η_w^0 = ``lr``; the other phase LRs keep their ratios to it (the study's LR grid)."""
        s = lr / self.lr_prune_start
        return replace(self, lr_prune_start=self.lr_prune_start * s, lr_prune_end=self.lr_prune_end * s,
                       lr_regrow_start=self.lr_regrow_start * s, lr_regrow_end=self.lr_regrow_end * s)


@dataclass(frozen=True)
class Phases:
    """The epoch budget split: E_p pruning epochs, E_p + start_delay under pressure, the rest regrowth."""

    pruning_epochs: int
    pressure_epochs: int
    regrowth_epochs: int

    @classmethod
    def split(cls, epochs: int, pruning_epochs: int | None, pruning_fraction: float, start_delay: int) -> "Phases":
        e_p = max(1, round(pruning_fraction * epochs)) if pruning_epochs is None else int(pruning_epochs)
        if not 1 <= e_p <= epochs:
            raise ConfigError(f"method.pruning_epochs={e_p} must be in [1, method.epochs={epochs}]")
        pressured = e_p + start_delay
        if pressured > epochs:
            raise ConfigError(f"method.regrowth.start_delay={start_delay} must be >= 0 with pruning_epochs + "
                              f"start_delay <= method.epochs={epochs}")
        return cls(e_p, pressured, epochs - pressured)
