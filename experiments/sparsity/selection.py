"""Which channels survive: per-layer uniform top-k (default) or a global ranking with per-layer normalisation
(spec §2, §7 #5)."""
from __future__ import annotations

import math

import torch

from ..errors import ConfigError


def keep_count(n: int, ratio: float, round_to: int = 1, min_keep: int = 1) -> int:
    """Channels kept when removing the fraction ``ratio`` of ``n`` (rounded, multiple of ``round_to``)."""
    k = max(int(round(n * (1.0 - ratio))), min_keep, 1)
    if round_to > 1:   # after the floor, so that a width rounded up from 0 is still a multiple of round_to
        k = int(math.ceil(k / round_to) * round_to)
    return min(n, k)


def normalise(scores: torch.Tensor, how: str) -> torch.Tensor:
    """Per-layer normalisation for global ranking: ``mean`` (RKU-style block-relative), ``l2``, ``none``."""
    if how == "mean":
        return scores / scores.mean().clamp_min(1e-30)
    if how == "l2":
        return scores / scores.norm().clamp_min(1e-30)
    if how == "none":
        return scores
    raise ConfigError(f"method.normalize={how!r}; use mean, l2 or none")


def topk_sorted(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` largest scores, in ascending index order (ties broken by lower index)."""
    order = torch.sort(scores, descending=True, stable=True).indices
    return torch.sort(order[:k]).values


def select_keep(scores: dict[str, torch.Tensor], ratio: float | dict[str, float], global_ranking: bool = False,
                normalize: str = "mean", round_to: int = 1, min_keep: int = 1) -> dict[str, torch.Tensor]:
    """``{unit: kept channel indices}``. ``ratio`` = fraction removed (a float or one per unit)."""
    ratios = ratio if isinstance(ratio, dict) else {n: float(ratio) for n in scores}
    if not global_ranking:
        return {n: topk_sorted(s, keep_count(len(s), ratios[n], round_to, min_keep)) for n, s in scores.items()}
    names = list(scores)
    normed = [normalise(scores[n].float(), normalize) for n in names]
    flat = torch.cat(normed)
    total_keep = sum(keep_count(len(scores[n]), ratios[n], 1, 0) for n in names)
    threshold_order = torch.sort(flat, descending=True, stable=True).indices[:total_keep]
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask[threshold_order] = True
    out, start = {}, 0
    for n, s in zip(names, normed):
        m = mask[start:start + len(s)]
        start += len(s)
        k = max(int(m.sum()), min_keep)
        if round_to > 1:
            k = min(len(s), int(math.ceil(k / round_to) * round_to))
        out[n] = topk_sorted(s, k)
    return out


def jaccard(a: torch.Tensor, b: torch.Tensor) -> float:
    """|A ∩ B| / |A ∪ B| of two index sets."""
    sa, sb = set(a.tolist()), set(b.tolist())
    return len(sa & sb) / max(len(sa | sb), 1)
