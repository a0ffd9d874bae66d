"""Routing policies: each maps cached pruned-expert outputs to a confidence-like score per input.

An input goes to the full model iff ``score < τ``. Zero-cost priors (AGF §4.1) read only the pruned
expert's logits or penultimate features; ``oracle`` reads labels (an upper bound); ``learned`` fits a
small MLP on validation. Registry + ``create_policy`` as everywhere else in the repo.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from experiments.errors import ConfigError

from .cache import SplitOutputs
from .learned import LearnedRouter


# -- pure signals (higher = more confident that the pruned expert is right) -------------------
def max_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Top-1 softmax probability (the paper's router signal)."""
    return F.softmax(logits.float(), dim=1).max(1).values


def softmax_margin(logits: torch.Tensor) -> torch.Tensor:
    """Top-1 minus top-2 softmax probability."""
    top2 = F.softmax(logits.float(), dim=1).topk(2, dim=1).values
    return top2[:, 0] - top2[:, 1]


def neg_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Minus the predictive entropy (nats): low-entropy inputs are "easy"."""
    logp = F.log_softmax(logits.float(), dim=1)
    return (logp.exp() * logp).sum(1)


def activation_energy(features: torch.Tensor) -> torch.Tensor:
    """Mean |feature| of the penultimate features (ℓ1 "signal energy" / dimension): low energy → escalate."""
    return features.float().abs().mean(1)


class Policy:
    """Base: ``fit`` on validation (returns the validation part left for choosing τ), ``score`` a split."""

    name = "policy"
    uses_labels = False
    #: None: sweep τ over validation quantiles; otherwise the fixed thresholds of a static policy
    fixed_thresholds: tuple[float, ...] | None = None

    def fit(self, val: SplitOutputs, seed: int = 0) -> SplitOutputs:
        return val

    def score(self, out: SplitOutputs) -> torch.Tensor:
        raise NotImplementedError

    def thresholds(self, val_scores: np.ndarray, n_points: int) -> np.ndarray | None:
        return None if self.fixed_thresholds is None else np.asarray(self.fixed_thresholds, dtype=float)


class SignalPolicy(Policy):
    def __init__(self, name: str, fn: Callable[[torch.Tensor], torch.Tensor], on_features: bool = False,
                 higher_is_confident: bool = True):
        self.name, self.fn, self.on_features, self.sign = name, fn, on_features, 1.0 if higher_is_confident else -1.0

    def score(self, out: SplitOutputs) -> torch.Tensor:
        x = out.pruned_features if self.on_features else out.pruned_logits
        if x is None:
            raise ConfigError(f"routing={self.name} needs the pruned expert's features (none were captured)")
        return self.sign * self.fn(x)


class StaticPolicy(Policy):
    """Every input to one expert: ``full`` (τ = +∞) or ``pruned`` (τ = −∞)."""

    def __init__(self, expert: str):
        if expert not in ("full", "pruned"):
            raise ValueError(f"static expert {expert!r} must be 'full' or 'pruned'")
        self.name = f"static_{expert}"
        self.fixed_thresholds = (np.inf,) if expert == "full" else (-np.inf,)

    def score(self, out: SplitOutputs) -> torch.Tensor:
        return torch.zeros(len(out))


class RandomPolicy(Policy):
    """Uniform random scores: τ = q escalates a random fraction ≈ q (the matched-rate baseline)."""

    name = "random"

    def __init__(self, seed: int = 0):
        self.seed = seed
        self._calls = 0

    def score(self, out: SplitOutputs) -> torch.Tensor:
        self._calls += 1
        gen = torch.Generator().manual_seed(self.seed * 1000 + self._calls)
        return torch.rand(len(out), generator=gen)


class OraclePolicy(Policy):
    """Escalate exactly the inputs the pruned expert gets wrong (score 1 right / 0 wrong): an upper bound."""

    name = "oracle"
    uses_labels = True

    def score(self, out: SplitOutputs) -> torch.Tensor:
        return out.pruned_correct.float()

    def thresholds(self, val_scores, n_points):
        return np.array([-np.inf, 0.5, np.inf])


class LearnedPolicy(Policy):
    """A small MLP on the pruned expert's logits (optionally features) predicting "pruned expert wrong";
    fitted on a seeded part of validation, τ chosen on the rest (so the threshold is not chosen on the
    data the router was fitted on)."""

    name = "learned"

    def __init__(self, hidden: int = 32, epochs: int = 300, lr: float = 1e-2, weight_decay: float = 1e-3,
                 use_features: bool = False, fit_fraction: float = 0.5):
        self.router = LearnedRouter(hidden=hidden, epochs=epochs, lr=lr, weight_decay=weight_decay,
                                    use_features=use_features)
        self.fit_fraction = fit_fraction

    def fit(self, val: SplitOutputs, seed: int = 0) -> SplitOutputs:
        n = len(val)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 17))
        n_fit = int(round(self.fit_fraction * n))
        if n_fit < 2 or n - n_fit < 2:
            raise ConfigError(f"routing=learned needs a larger validation split (dataset.val_size={n})")
        self.router.fit(val.subset(perm[:n_fit]), seed=seed)
        return val.subset(perm[n_fit:])

    def score(self, out: SplitOutputs) -> torch.Tensor:
        return -self.router.predict_error(out)


POLICIES: dict[str, Callable[..., Policy]] = {
    "static_full": lambda **kw: StaticPolicy("full"),
    "static_pruned": lambda **kw: StaticPolicy("pruned"),
    "random": lambda seed=0, **kw: RandomPolicy(seed=seed),
    "confidence": lambda **kw: SignalPolicy("confidence", max_softmax),
    "margin": lambda **kw: SignalPolicy("margin", softmax_margin),
    "entropy": lambda **kw: SignalPolicy("entropy", neg_entropy),
    "l1": lambda higher_is_confident=True, **kw: SignalPolicy("l1", activation_energy, on_features=True,
                                                               higher_is_confident=higher_is_confident),
    "oracle": lambda **kw: OraclePolicy(),
    "learned": lambda seed=0, **kw: LearnedPolicy(**kw),
}

#: zero-cost signals whose AUROC every routing run reports (AGF spec §5)
ZERO_COST = ("confidence", "margin", "entropy", "l1")


def create_policy(name: str, **kwargs) -> Policy:
    if name not in POLICIES:
        raise ConfigError(f"routing.policy={name!r} is unknown; choose one of {sorted(POLICIES)}")
    return POLICIES[name](**kwargs)
