"""Prunable structural units: output channels of a conv/linear layer, with their dependency group.

A unit layer is a Conv2d/Linear whose output channels can be removed without touching another layer's
output channels (an "internal" channel: ResNet block conv1, bottleneck conv1/conv2, WRN conv1, ViT ``mlp.fc1``).
Residual-stream channels (coupled through additions) are skipped unless ``include_residual`` (spec §2.4, §7 #6);
then the whole coupled group is one unit set scored consistently.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
import torch_pruning as tp
from torch import nn


@dataclass
class Unit:
    """One prunable layer: ``layer`` produces the channels, ``consumer`` reads them (its input is Y_u)."""

    name: str
    layer: nn.Module
    consumer: nn.Module | None
    bn: nn.Module | None = None
    coupled: list[str] = field(default_factory=list)   # other producers in the same group (residual)
    producers: list[nn.Module] = field(default_factory=list)  # every out-channel layer of the group
    consumers: list[nn.Module] = field(default_factory=list)  # every in-channel layer of the group (``consumer``: the first)

    @property
    def num_channels(self) -> int:
        return self.layer.out_channels if isinstance(self.layer, nn.Conv2d) else self.layer.out_features


def out_fn(layer: nn.Module):
    return tp.prune_conv_out_channels if isinstance(layer, nn.Conv2d) else tp.prune_linear_out_channels


def build_graph(model: nn.Module, example: torch.Tensor) -> tp.DependencyGraph:
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tp.DependencyGraph().build_dependency(model, example_inputs=example)


def group_members(group) -> tuple[list[nn.Module], list[nn.Module], list[nn.Module]]:
    """(producers: out-channel conv/linear, consumers: in-channel conv/linear, norms) of a dependency group."""
    producers, consumers, norms = [], [], []
    for dep, _ in group:
        mod, handler = dep.target.module, dep.handler
        hname = getattr(handler, "__name__", "")
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            (producers if hname == "prune_out_channels" else consumers).append(mod)
        elif isinstance(mod, (nn.BatchNorm2d, nn.BatchNorm1d, nn.LayerNorm, nn.GroupNorm)):
            norms.append(mod)
    return producers, consumers, norms


def default_ignore(model: nn.Module, prune_heads: bool = False) -> list[str]:
    """Stem, classifier and (unless ``prune_heads``) attention projections."""
    names = [getattr(model, "stem_name", None), getattr(model, "classifier_name", None)]
    if not prune_heads:
        names.append(r".*\.attn\..*")
    return [n for n in names if n]


def find_units(model: nn.Module, example: torch.Tensor, include_residual: bool = False,
               ignore: list[str] | None = None, prune_heads: bool = False,
               graph: tp.DependencyGraph | None = None) -> list[Unit]:
    """Prunable units in module order. ``ignore`` entries are exact module names or regexes."""
    patterns = [re.compile(p + r"$") for p in default_ignore(model, prune_heads) + list(ignore or [])]
    dg = graph or build_graph(model, example)
    names = {m: n for n, m in model.named_modules()}
    units, seen = [], set()
    for name, layer in model.named_modules():
        if not isinstance(layer, (nn.Conv2d, nn.Linear)) or any(p.match(name) for p in patterns):
            continue
        if isinstance(layer, nn.Conv2d) and layer.groups != 1:
            continue
        group = dg.get_pruning_group(layer, out_fn(layer), idxs=[0])
        producers, consumers, norms = group_members(group)
        others = [names[p] for p in producers if p is not layer]
        if others and not include_residual:
            continue
        if any(any(p.match(names[m]) for p in patterns) for m in producers) or id(layer) in seen:
            continue
        seen.update(id(p) for p in producers)
        consumer = consumers[0] if consumers else None
        units.append(Unit(name, layer, consumer, norms[0] if norms else None, others, producers, consumers))
    return units
