"""Optimizer factory with weight-decay groups."""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from ..errors import ConfigError

OPTIMIZERS = ("sgd", "adam", "adamw")


def param_groups(params: Iterable[tuple[str, nn.Parameter]], weight_decay: float,
                 no_decay_bias_norm: bool) -> list[dict]:
    """Split into decayed / non-decayed groups; 1-D params (biases, norms) skip decay when asked."""
    decay, no_decay = [], []
    for _, p in params:
        (no_decay if no_decay_bias_norm and p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return [g for g in groups if g["params"]]


def create_optimizer(named_params: Iterable[tuple[str, nn.Parameter]], name: str = "sgd", lr: float = 0.1,
                     momentum: float = 0.9, weight_decay: float = 0.0, nesterov: bool = False,
                     betas: tuple[float, float] = (0.9, 0.999), no_decay_bias_norm: bool = False
                     ) -> torch.optim.Optimizer:
    groups = param_groups(named_params, weight_decay, no_decay_bias_norm)
    if not groups:
        raise ValueError("optimizer has no trainable parameters")
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=tuple(betas))
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas))
    raise ConfigError(f"trainer.optimizer.name={name!r} is not one of {OPTIMIZERS}")
