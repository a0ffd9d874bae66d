"""The scorer zoo (spec §1.3): one interface, picked by ``scorer=<name>``.

Each scorer maps a unit's calibration statistics (``agf.calibration``) and weights to one score per output
channel; higher = keep. ``Scorer`` subclasses torch-pruning's ``Importance`` so a dependency group (residual-
coupled channels included) is scored as a whole: ``scorer(group)`` returns one score per channel of the
group's root layer, summed over every producer in the group.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch_pruning as tp
from torch import nn

from experiments.errors import ConfigError
from experiments.sparsity.units import Unit, group_members

ScoreFn = Callable[[nn.Module, dict, int, "Scorer"], torch.Tensor]
SCORERS: dict[str, tuple[ScoreFn, str]] = {}   # name -> (fn, what it needs: none|forward|gradient)


def register_scorer(name: str, needs: str):
    def deco(fn):
        SCORERS[name] = (fn, needs)
        return fn
    return deco


def in_norm_per_weight(layer: nn.Module, norm: torch.Tensor) -> torch.Tensor:
    """||X_j||_2 broadcast to the weight's fan-in layout [1, fan_in] (conv: in-channel × kernel)."""
    if isinstance(layer, nn.Conv2d):
        k = layer.weight[0, 0].numel()
        return norm.repeat_interleave(k).unsqueeze(0)
    return norm.unsqueeze(0)


# -- pure score functions: (layer, stats, producer index, scorer) -> [C_out] ---------------------------
@register_scorer("agf", "gradient")
def agf_score(layer, stats, i, sc):
    """AGF utility U_c = 1/T Σ_t E_x Σ_p |Y_c ⊙ ∂L/∂Y_c| (spec §1.1)."""
    return stats[sc.agf_stat]


@register_scorer("taylor_signed", "gradient")
def taylor_signed_score(layer, stats, i, sc):
    """Feature-space Taylor with |·| after aggregating positions and samples: |E_x Σ_p Y·∂L/∂Y|."""
    return stats["signed"]


@register_scorer("taylor", "gradient")
def taylor_score(layer, stats, i, sc):
    """Molchanov et al. 2019: (Σ_{w∈W_c} g_w w)² per batch, averaged over batches."""
    return stats[f"taylor{i}"]


@register_scorer("snip", "gradient")
def snip_score(layer, stats, i, sc):
    """Σ_{w∈W_c} |ḡ_w w| with the calibration-mean gradient (Lee et al. 2019, structured)."""
    return (stats[f"grad_w{i}"] * layer.weight.detach().flatten(1)).abs().sum(1)


@register_scorer("act", "gradient")
def act_score(layer, stats, i, sc):
    """Activation magnitude E_x Σ_p |Y_c| (analysis signal)."""
    return stats["act"]


@register_scorer("grad", "gradient")
def grad_score(layer, stats, i, sc):
    """Gradient magnitude E_x Σ_p |∂L/∂Y_c| (analysis signal)."""
    return stats["grad"]


@register_scorer("l1", "none")
def l1_score(layer, stats, i, sc):
    """Filter L1 norm Σ|W_c| (Li et al. 2017)."""
    return layer.weight.detach().flatten(1).abs().sum(1)


@register_scorer("wanda", "forward")
def wanda_score(layer, stats, i, sc):
    """Structured Wanda: Σ_j |W_cj| ||X_j||_2 over the unit's weights (Sun et al. 2023)."""
    w = layer.weight.detach().flatten(1).abs()
    return (w * in_norm_per_weight(layer, stats[f"in_norm{i}"])).sum(1)


@register_scorer("ria", "forward")
def ria_score(layer, stats, i, sc):
    """Structured RIA: Σ_j (|W_cj|/Σ_c'|W_c'j| + |W_cj|/Σ_j'|W_cj'|) ||X_j||^a, a = 0.5 (Zhang et al. 2024)."""
    w = layer.weight.detach().flatten(1).abs()
    rel = w / w.sum(0, keepdim=True).clamp_min(1e-12) + w / w.sum(1, keepdim=True).clamp_min(1e-12)
    return (rel * in_norm_per_weight(layer, stats[f"in_norm{i}"]).pow(sc.ria_a)).sum(1)


@register_scorer("bn_scale", "none")
def bn_scale_score(layer, stats, i, sc):
    """|γ_c| of the norm layer after the unit (network slimming); falls back to L1 without one."""
    bn = stats.get("_bn")
    if bn is None or getattr(bn, "weight", None) is None:
        return l1_score(layer, stats, i, sc)
    return bn.weight.detach().abs()


@register_scorer("random", "none")
def random_score(layer, stats, i, sc):
    """I.i.d. uniform scores: a uniformly random subset of k channels per layer."""
    return torch.rand(layer.weight.shape[0], generator=sc.generator)


# -- the Importance --------------------------------------------------------------------------------------
class Scorer(tp.importance.Importance):
    """Scores units from calibration statistics; ``scorer(group)`` works on torch-pruning groups."""

    def __init__(self, name: str = "agf", seed: int = 0, ria_a: float = 0.5, agf_stat: str = "agf"):
        if name not in SCORERS:
            raise ConfigError(f"scorer.name={name!r} is unknown; choose one of {sorted(SCORERS)}")
        if agf_stat not in ("agf", "agf_possum"):
            raise ConfigError(f"scorer.agf_stat={agf_stat!r}; use agf (abs per element) or agf_possum")
        self.name, self.seed, self.ria_a, self.agf_stat = name, seed, ria_a, agf_stat
        self.fn, self.needs = SCORERS[name]
        self.generator = torch.Generator().manual_seed(seed)
        self.stats: dict = {}
        self.units: dict[int, Unit] = {}

    def bind(self, units: list[Unit], stats: dict) -> "Scorer":
        """Attach calibration statistics (``{unit name: {stat: tensor}}``) for ``units``."""
        self.stats = stats
        self.units = {id(p): u for u in units for p in (u.producers or [u.layer])}
        return self

    def unit_scores(self, unit: Unit) -> torch.Tensor:
        """One score per output channel of ``unit``, summed over the producers of its group."""
        st = dict(self.stats.get(unit.name, {}))
        st["_bn"] = unit.bn
        total = None
        producers = unit.producers or [unit.layer]
        feature_level = self.name in ("agf", "taylor_signed", "act", "grad")
        for i, p in enumerate(producers[:1] if feature_level else producers):
            s = self.fn(p, st, i, self).detach().float().cpu()
            total = s if total is None else total + s
        return total

    @torch.no_grad()
    def __call__(self, group) -> torch.Tensor:
        producers, _, _ = group_members(group)
        root_idxs = group[0].idxs
        for p in producers:
            unit = self.units.get(id(p))
            if unit is not None:
                return self.unit_scores(unit)[torch.as_tensor(root_idxs)]
        raise KeyError("no calibrated unit in this group; call scorer.bind(units, stats) first")


def create_scorer(name: str = "agf", seed: int = 0, ria_a: float = 0.5, agf_stat: str = "agf") -> Scorer:
    """The scorer registered under ``name`` (``agf, taylor, taylor_signed, l1, wanda, ria, snip, bn_scale,
    random``; analysis signals ``act, grad``)."""
    return Scorer(name, seed=seed, ria_a=ria_a, agf_stat=agf_stat)
