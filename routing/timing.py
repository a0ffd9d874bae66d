"""Wall-clock of a batched cascade against the full model alone, measured in one process.

Per batch: the pruned expert runs on the whole batch, the gate picks the escalated rows, and the full
model runs once on that sub-batch. MAC averages do not predict this (small sub-batches run at lower
throughput), which is why it is measured rather than derived.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable, Sequence

import torch
from torch import nn

from .cache import FeatureTap, SplitOutputs

Gate = Callable[[SplitOutputs], torch.Tensor]


@torch.no_grad()
def cascade_wallclock(pruned: nn.Module, full: nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
                      gate: Gate, repeats: int = 3, warmup: int = 1) -> dict:
    """Median ms over ``repeats`` passes through ``batches`` for: full alone, pruned alone, the cascade."""
    pruned.eval()
    full.eval()
    tap = FeatureTap(pruned)
    sync = torch.cuda.synchronize if batches and batches[0][0].is_cuda else (lambda: None)
    escalated = [0]

    def run_full():
        for x, _ in batches:
            full(x)

    def run_pruned():
        for x, _ in batches:
            pruned(x)

    def run_cascade():
        escalated[0] = 0
        for x, y in batches:
            logits = pruned(x)
            esc = gate(SplitOutputs(y, logits, None, tap.value))
            n = int(esc.sum())
            escalated[0] += n
            if n:
                full(x[esc.to(x.device)])

    def timed(fn):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        return (time.perf_counter() - t0) * 1e3

    try:
        for _ in range(warmup):
            run_full(), run_pruned(), run_cascade()
        times = {"full": [], "pruned": [], "cascade": []}
        for _ in range(max(repeats, 1)):  # interleaved so drift hits all three alike
            times["full"].append(timed(run_full))
            times["pruned"].append(timed(run_pruned))
            times["cascade"].append(timed(run_cascade))
    finally:
        tap.remove()
    n = sum(len(y) for _, y in batches)
    out = {f"wallclock_{k}_ms": statistics.median(v) for k, v in times.items()}
    out["wallclock_ratio"] = out["wallclock_cascade_ms"] / out["wallclock_full_ms"]
    out["wallclock_escalated"] = escalated[0] / max(n, 1)
    return out
