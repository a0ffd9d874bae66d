"""The scorer zoo (spec §1.3): one class per scorer, picked by ``scorer=<name>``.

Each scorer maps a unit's calibration statistics (``agf.calibration``) and weights to one score per output
channel; higher = keep. ``Scorer`` subclasses torch-pruning's ``Importance`` so a dependency group (residual-
coupled channels included) is scored as a whole: ``scorer(group)`` returns one score per channel of the
group's root layer, summed over every producer in the group.
"""
from __future__ import annotations

import torch
import torch_pruning as tp
from torch import nn

from experiments.errors import ConfigError
from experiments.sparsity.units import Unit, group_members

class Scorer(tp.importance.Importance):
    """Base of the scorers: scores units from calibration statistics; ``scorer(group)`` works on torch-pruning
    groups. A scorer declares ``name`` (its ``scorer=`` option), ``needs`` (what calibration must run: none,
    forward or gradient) and ``feature_level`` (its statistic is one per group, read at the first producer), and
    implements ``score``; its own parameters are its constructor's."""

    name: str = ""
    needs: str = "none"
    feature_level: bool = False

    def __init__(self, seed: int = 0, name: str | None = None):
        if name is not None and name != self.name:   # the YAML's name: key is the option's name
            raise ConfigError(f"scorer.name={name!r} does not match {type(self).__name__} ({self.name!r})")
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        self.stats: dict = {}
        self.units: dict[int, Unit] = {}

    def score(self, layer: nn.Module, stats: dict, i: int) -> torch.Tensor:
        """One score per output channel of producer ``layer`` (index ``i`` in its group); higher = keep."""
        raise NotImplementedError

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
        for i, p in enumerate(producers[:1] if self.feature_level else producers):
            s = self.score(p, st, i).detach().float().cpu()
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


SCORERS: dict[str, type[Scorer]] = {}


def register_scorer(cls: type[Scorer]) -> type[Scorer]:
    """Class decorator: ``create_scorer(cls.name)`` builds it; adding a scorer = one class + one YAML."""
    SCORERS[cls.name] = cls
    return cls


def in_norm_per_weight(layer: nn.Module, norm: torch.Tensor) -> torch.Tensor:
    """||X_j||_2 broadcast to the weight's fan-in layout [1, fan_in] (conv: in-channel × kernel)."""
    if isinstance(layer, nn.Conv2d):
        k = layer.weight[0, 0].numel()
        return norm.repeat_interleave(k).unsqueeze(0)
    return norm.unsqueeze(0)


def filter_l1(layer: nn.Module) -> torch.Tensor:
    """Σ|W_c| per output channel."""
    return layer.weight.detach().flatten(1).abs().sum(1)


class StatScorer(Scorer):
    """A scorer whose score is one calibration statistic, ``stat`` (``{i}``: the producer's index)."""

    stat: str = ""

    def score(self, layer, stats, i):
        return stats[self.stat.format(i=i)]


# -- the scorer zoo: (layer, stats, producer index) -> [C_out] ---------------------------------------------
@register_scorer
class AGFScorer(StatScorer):
    """AGF utility U_c = 1/T Σ_t E_x Σ_p |Y_c ⊙ ∂L/∂Y_c| (spec §1.1); ``agf_stat=agf_possum`` takes |·| after the
    spatial sum (§7 #2)."""

    name, needs, feature_level = "agf", "gradient", True

    def __init__(self, seed: int = 0, agf_stat: str = "agf", name: str | None = None):
        super().__init__(seed, name)
        if agf_stat not in ("agf", "agf_possum"):
            raise ConfigError(f"scorer.agf_stat={agf_stat!r}; use agf (abs per element) or agf_possum")
        self.stat = agf_stat


@register_scorer
class TaylorSignedScorer(StatScorer):
    """Feature-space Taylor with |·| after aggregating positions and samples: |E_x Σ_p Y·∂L/∂Y|."""

    name, needs, feature_level, stat = "taylor_signed", "gradient", True, "signed"


@register_scorer
class TaylorScorer(StatScorer):
    """Molchanov et al. 2019: (Σ_{w∈W_c} g_w w)² per batch, averaged over batches."""

    name, needs, stat = "taylor", "gradient", "taylor{i}"


@register_scorer
class SNIPScorer(Scorer):
    """Σ_{w∈W_c} |ḡ_w w| with the calibration-mean gradient (Lee et al. 2019, structured)."""

    name, needs = "snip", "gradient"

    def score(self, layer, stats, i):
        return (stats[f"grad_w{i}"] * layer.weight.detach().flatten(1)).abs().sum(1)


@register_scorer
class ActScorer(StatScorer):
    """Activation magnitude E_x Σ_p |Y_c| (analysis signal)."""

    name, needs, feature_level, stat = "act", "gradient", True, "act"


@register_scorer
class GradScorer(StatScorer):
    """Gradient magnitude E_x Σ_p |∂L/∂Y_c| (analysis signal)."""

    name, needs, feature_level, stat = "grad", "gradient", True, "grad"


@register_scorer
class L1Scorer(Scorer):
    """Filter L1 norm Σ|W_c| (Li et al. 2017)."""

    name = "l1"

    def score(self, layer, stats, i):
        return filter_l1(layer)


@register_scorer
class WandaScorer(Scorer):
    """Structured Wanda: Σ_j |W_cj| ||X_j||_2 over the unit's weights (Sun et al. 2023)."""

    name, needs = "wanda", "forward"

    def score(self, layer, stats, i):
        w = layer.weight.detach().flatten(1).abs()
        return (w * in_norm_per_weight(layer, stats[f"in_norm{i}"])).sum(1)


@register_scorer
class RIAScorer(Scorer):
    """Structured RIA: Σ_j (|W_cj|/Σ_c'|W_c'j| + |W_cj|/Σ_j'|W_cj'|) ||X_j||^a (Zhang et al. 2024)."""

    name, needs = "ria", "forward"

    def __init__(self, seed: int = 0, ria_a: float = 0.5, name: str | None = None):
        super().__init__(seed, name)
        self.ria_a = float(ria_a)

    def score(self, layer, stats, i):
        w = layer.weight.detach().flatten(1).abs()
        rel = w / w.sum(0, keepdim=True).clamp_min(1e-12) + w / w.sum(1, keepdim=True).clamp_min(1e-12)
        return (rel * in_norm_per_weight(layer, stats[f"in_norm{i}"]).pow(self.ria_a)).sum(1)


@register_scorer
class BNScaleScorer(Scorer):
    """|γ_c| of the norm layer after the unit (network slimming); falls back to L1 without one."""

    name = "bn_scale"

    def score(self, layer, stats, i):
        bn = stats.get("_bn")
        if bn is None or getattr(bn, "weight", None) is None:
            return filter_l1(layer)
        return bn.weight.detach().abs()


@register_scorer
class RandomScorer(Scorer):
    """I.i.d. uniform scores: a uniformly random subset of k channels per layer."""

    name = "random"

    def score(self, layer, stats, i):
        return torch.rand(layer.weight.shape[0], generator=self.generator)


def create_scorer(name: str = "agf", **kwargs) -> Scorer:
    """The scorer registered under ``name`` (``agf, taylor, taylor_signed, l1, wanda, ria, snip, bn_scale,
    random``; analysis signals ``act, grad``), built with its own parameters ``kwargs``."""
    if name not in SCORERS:
        raise ConfigError(f"scorer.name={name!r} is unknown; choose one of {sorted(SCORERS)}")
    return SCORERS[name](**kwargs)
