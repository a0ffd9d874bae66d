"""Physical channel removal with torch-pruning dependency groups (conv/BN/linear, residual groups, ViT MLP)."""
from __future__ import annotations

import copy

import torch
from torch import nn

from experiments.measure import count_macs

from ..errors import ConfigError
from .selection import select_keep
from .units import Unit, build_graph, find_units, out_fn


def remove_channels(model: nn.Module, example: torch.Tensor, units: list[Unit],
                    keep: dict[str, torch.Tensor]) -> nn.Module:
    """Remove every channel of each unit that is not in ``keep[unit.name]`` (in place); returns ``model``."""
    dg = build_graph(model, example)
    for u in units:
        kept = set(keep[u.name].tolist())
        drop = [c for c in range(u.num_channels) if c not in kept]
        if not drop:
            continue
        group = dg.get_pruning_group(u.layer, out_fn(u.layer), idxs=drop)
        if not dg.check_pruning_group(group):
            raise RuntimeError(f"torch-pruning refused to prune {u.name} to {len(kept)} channels")
        group.prune()
    return model


#: batch size of ``target_kind=latency`` (the speed that matters for throughput)
LATENCY_BATCH = 64


def latency_cost(model: nn.Module, example: torch.Tensor) -> float:
    """Measured batch-64 latency (ms) of ``model`` in its deployment form (BN folded, channels-last), best of three
    medians: the cost ``target_kind=latency`` reduces."""
    from experiments.measure import in_form, latency_ms

    x = example[:1].expand(LATENCY_BATCH, *example.shape[1:]).contiguous()
    with torch.inference_mode():
        net, xd = in_form(model, "deploy", x)
        return min(latency_ms(net, xd, repeats=10) for _ in range(3))


def latency_reduction(base: nn.Module, candidate: nn.Module, example: torch.Tensor, rounds: int = 3) -> float:
    """1 − the candidate's ÷ the base's measured batch-64 latency, both in the deployment form, timed round by round
    in alternation (best median of each): a slow spell of a shared machine, which lasts seconds to minutes, hits
    both alike instead of turning into a fake reduction (a base timed once at the start of a bisection does)."""
    from experiments.measure import in_form, latency_ms

    x = example[:1].expand(LATENCY_BATCH, *example.shape[1:]).contiguous()
    with torch.inference_mode():
        runs = [in_form(m, "deploy", x) for m in (base, candidate)]
        best = [float("inf")] * len(runs)
        for _ in range(rounds):
            for i, (net, xd) in enumerate(runs):
                best[i] = min(best[i], latency_ms(net, xd, repeats=10))
    return 1.0 - best[1] / best[0]


def cost(model: nn.Module, example: torch.Tensor, kind: str) -> float:
    """MACs, parameter count or measured latency of ``model`` (what a ``target_kind`` reduction is measured in)."""
    if kind == "macs":
        return float(count_macs(model, example)["macs_dense"])
    if kind == "params":
        return float(sum(p.numel() for p in model.parameters()))
    if kind == "latency":
        return latency_cost(model, example)
    raise ConfigError(f"method.target_kind={kind!r}; use channels, macs, params or latency")


def channel_ratio_for(model: nn.Module, example: torch.Tensor, scores: dict[str, torch.Tensor], target: float,
                      kind: str, include_residual: bool = False, ignore=None, prune_heads: bool = False,
                      global_ranking: bool = False, normalize: str = "mean", steps: int = 12,
                      round_to: int = 1) -> float:
    """Bisection on the per-layer channel ratio so that the ``kind`` cost drops by at least ``target`` (widths
    rounded to ``round_to`` as the final selection rounds them; ``latency`` is measured, so the bisection sees the
    kernels' real steps, e.g. with ``round_to=auto`` the widths CPU conv kernels compute in one block; each
    candidate is timed in alternation with the unpruned model, :func:`latency_reduction`)."""
    base = None if kind == "latency" else cost(model, example, kind)

    def reduction(r: float) -> float:
        m = copy.deepcopy(model)
        units = find_units(m, example, include_residual, ignore, prune_heads)
        remove_channels(m, example, units, select_keep(scores, r, global_ranking, normalize, round_to))
        if kind == "latency":
            return latency_reduction(model, m, example)
        return 1.0 - cost(m, example, kind) / base

    lo, hi = 0.0, 0.999
    most = reduction(hi)   # measured once (a latency is a noisy measurement)
    if most < target:
        fix = ("a smaller sparsity.target" if include_residual
               else "method.include_residual=true or a smaller sparsity.target")
        raise ConfigError(f"sparsity.target={target} unreachable by pruning "
                          f"{'all' if include_residual else 'internal'} channels (max {kind} reduction "
                          f"{most:.3f}); set {fix}")
    for _ in range(steps):
        mid = (lo + hi) / 2
        if reduction(mid) >= target:
            hi = mid
        else:
            lo = mid
    return hi
