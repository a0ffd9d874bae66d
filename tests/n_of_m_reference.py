"""A brute-force N:M selection, the reference the N:M tests compare with."""
import itertools

import torch


def brute_force(score: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Loop over every group of M along dim 1 (at each index of the other dims) and keep its N largest."""
    keep = torch.zeros(score.shape, dtype=torch.bool)
    other = [range(s) for i, s in enumerate(score.shape) if i != 1]
    for idx in itertools.product(*other):
        for start in range(0, score.shape[1], m):
            cells = [(idx[0], c, *idx[1:]) for c in range(start, start + m)]
            best = sorted(cells, key=lambda cell: -float(score[cell]))[:n]
            for cell in best:
                keep[cell] = True
    return keep
