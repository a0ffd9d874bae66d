"""N:M semi-structured masks: at most N non-zeros in every M consecutive weights of a layer's input dimension.

The pattern GPUs run as sparse matrix multiplies (2:4 on NVIDIA Ampere and later: cuSPARSELt, ``torch.sparse``'s
``to_sparse_semi_structured``). Groups run along the input features: the last dim of a Linear weight (out, in),
and the input channels of a conv weight (out, in, kh, kw) at each (out, kh, kw) — the GEMM's reduction dimension
in a channels-last conv, as NVIDIA's ASP groups it. A layer whose input size is not a multiple of M has no such
pattern and stays dense (ASP skips those layers too).
"""
from __future__ import annotations

import re

import torch

from ..errors import ConfigError


def parse_pattern(pattern: str) -> tuple[int, int]:
    """``"2:4"`` -> (2, 4); 0 < N < M."""
    match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", str(pattern))
    n, m = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
    if not 0 < n < m:
        raise ConfigError(f"method.pattern={pattern!r} must be 'N:M' with 0 < N < M, e.g. '2:4' (quoted in a YAML "
                          "file, where an unquoted 2:4 reads as the number 124); null for unstructured masks")
    return n, m


def _groups(x: torch.Tensor, m: int) -> torch.Tensor:
    """(groups, m) view of ``x`` grouped along its input dim (dim 1 moved last); a copy for convs."""
    return x.movedim(1, -1).reshape(-1, m)


def fits(shape: torch.Size | tuple, m: int) -> bool:
    """Whether a weight of ``shape`` can carry an N:M pattern (its input size is a multiple of M)."""
    return len(shape) >= 2 and shape[1] % m == 0


def keep_n_of_m(score: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Boolean mask of ``score``'s shape keeping the N highest scores of every M along the input dim."""
    if not fits(score.shape, m):
        raise ValueError(f"a weight of shape {tuple(score.shape)} has no {n}:{m} pattern (input size % {m} != 0)")
    groups = _groups(score.detach().float(), m)
    keep = torch.zeros_like(groups, dtype=torch.bool)
    keep.scatter_(1, torch.topk(groups, n, dim=1, sorted=False).indices, True)
    moved = score.movedim(1, -1).shape
    return keep.reshape(moved).movedim(-1, 1).contiguous()


def n_of_m_masks(scores: dict[str, torch.Tensor], n: int, m: int) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Per layer, the top N of every M scores; layers that cannot carry the pattern keep every weight.
    Returns (masks, names of the layers left dense)."""
    masks, dense = {}, []
    for name, s in scores.items():
        if fits(s.shape, m):
            masks[name] = keep_n_of_m(s, n, m)
        else:
            masks[name] = torch.ones(s.shape, dtype=torch.bool, device=s.device)
            dense.append(name)
    return masks, dense


def satisfies(weight: torch.Tensor, n: int, m: int) -> bool:
    """Whether ``weight`` has at most N non-zeros in every group of M (the form a sparse N:M kernel accepts)."""
    return fits(weight.shape, m) and bool(((_groups(weight.detach(), m) != 0).sum(1) <= n).all())
