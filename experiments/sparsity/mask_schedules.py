"""When masks change: schedule objects on a fit's :class:`~experiments.sparsity.clock.StepClock`.

A schedule answers ``is_step(step)`` for 0-based fit steps (T read from the clock); the cubic one
also says which sparsity a step asks for. The formulas are ``schedules``' pure functions.
"""
from __future__ import annotations

from experiments.errors import ConfigError

from .clock import StepClock
from .schedules import gmp_sparsity


class CubicSchedule:
    """Zhu & Gupta's ramp s_i → s_f over steps [t0, t_end] (fractions of T), a step every ``every`` steps;
    t_end ≤ T − 1 is always a step, so the fit reaches s_f exactly (GMP, GraNet)."""

    def __init__(self, clock: StepClock, final: float, initial: float = 0.0, every: int = 100,
                 start_fraction: float = 0.0, end_fraction: float = 0.75):
        if not 0.0 <= float(initial) <= float(final):
            raise ConfigError(f"method.initial_sparsity={initial} must be in [0, target_sparsity={final}]")
        if int(every) < 1:
            raise ConfigError(f"method.prune_every={every} must be >= 1 (steps)")
        if not 0.0 <= float(start_fraction) <= float(end_fraction) <= 1.0:
            raise ConfigError(f"need 0 <= method.prune_start_fraction ({start_fraction}) <= "
                             f"method.prune_end_fraction ({end_fraction}) <= 1")
        self.clock = clock
        self.final, self.initial, self.every = float(final), float(initial), int(every)
        self.start_fraction, self.end_fraction = float(start_fraction), float(end_fraction)

    def bounds(self) -> tuple[int, int]:
        """(t0, t_end) in 0-based fit steps; t_end ≤ T − 1 so the last pruning step exists."""
        T = int(self.clock.total or 0)
        last = max(T - 1, 0)
        t0 = min(int(round(self.start_fraction * T)), last)
        t_end = min(max(int(round(self.end_fraction * T)), t0), last)
        return t0, t_end

    def sparsity_at(self, step: int) -> float:
        t0, t_end = self.bounds()
        return gmp_sparsity(step, self.final, self.initial, t0, t_end - t0)

    def is_step(self, step: int) -> bool:
        t0, t_end = self.bounds()
        return t0 <= step <= t_end and ((step - t0) % self.every == 0 or step == t_end)

    def is_after(self, step: int) -> bool:
        """A step of the same period after the ramp has ended (GraNet's ``regen_after_schedule``)."""
        t0, t_end = self.bounds()
        return step > t_end and (step - t0) % self.every == 0


class PeriodicSchedule:
    """Every ``every`` steps for 0 < t < T_end = round(``end_fraction``·T) (RigL's ΔT and T_end)."""

    def __init__(self, clock: StepClock, every: int = 100, end_fraction: float = 0.75):
        if int(every) < 1:
            raise ConfigError(f"method.update_every={every} must be >= 1 (steps)")
        if not 0.0 <= float(end_fraction) <= 1.0:
            raise ConfigError(f"method.end_fraction={end_fraction} must be in [0, 1]")
        self.clock, self.every, self.end_fraction = clock, int(every), float(end_fraction)

    def end_step(self) -> int:
        return int(round(self.end_fraction * int(self.clock.total or 0)))

    def is_step(self, step: int) -> bool:
        return 0 < step < self.end_step() and step % self.every == 0
