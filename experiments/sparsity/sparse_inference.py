"""Real sparse inference for unstructured sparsity: Linear layers as CSR matmuls where that is measured faster.

A finalized unstructured model (Hyperflows, GMP, RigL, ...) keeps its zeros in dense weights, so it runs the dense
kernels at the dense cost. :func:`sparsify` times each Linear layer on the input it really receives, dense
(``F.linear``) against CSR (``torch.sparse`` ``W_csr @ xᵀ``), and swaps in :class:`SparseLinear` only where CSR wins
by ``min_speedup``; the returned per-layer report says what was chosen and why. Convs stay dense (their CSR form
needs an im2col copy that costs more than it saves on CPU at these sizes).
"""
from __future__ import annotations

import statistics
import time
import warnings

import torch
import torch.nn.functional as F
from torch import nn

#: a Linear layer with fewer zeros than this is not worth timing as CSR
MIN_SPARSITY = 0.5


class SparseLinear(nn.Module):
    """y = x Wᵀ + b with W stored as CSR (only the non-zeros); inputs of any rank ``(..., in_features)``."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        with warnings.catch_warnings():   # "sparse CSR support is in beta"
            warnings.simplefilter("ignore")
            self.register_buffer("weight_csr", linear.weight.detach().to_sparse_csr())
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        y = (self.weight_csr @ flat.t()).t()
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        nnz = self.weight_csr.values().numel()
        return f"in_features={self.in_features}, out_features={self.out_features}, " \
               f"density={nnz / (self.in_features * self.out_features):.4f}"


def _median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


@torch.inference_mode()
def time_linear(linear: nn.Linear, x: torch.Tensor, repeats: int = 30) -> tuple[float, float]:
    """(dense ms, CSR ms) of one Linear on input ``x``, timed in alternation (best of 3 rounds each)."""
    sparse = SparseLinear(linear)
    dense_ms, csr_ms = [], []
    for _ in range(3):
        dense_ms.append(_median_ms(lambda: F.linear(x, linear.weight, linear.bias), repeats))
        csr_ms.append(_median_ms(lambda: sparse(x), repeats))
    return min(dense_ms), min(csr_ms)


@torch.inference_mode()
def sparsify(model: nn.Module, example: torch.Tensor, min_speedup: float = 1.1, min_sparsity: float = MIN_SPARSITY,
             repeats: int = 30) -> tuple[nn.Module, dict]:
    """Replace (in place) each Linear whose weights are at least ``min_sparsity`` zero and whose CSR form is at least
    ``min_speedup`` × faster on the input it receives for ``example``; returns ``(model, report)`` with
    {layer: {sparsity, dense_ms, csr_ms, speedup, sparse}} for every Linear."""
    inputs: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_pre_hook(lambda mod, args, name=name: inputs.setdefault(name, args[0]))
             for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    was_training = model.training
    model.eval()
    try:
        model(example)
    finally:
        for h in hooks:
            h.remove()
    report = {}
    for name, x in inputs.items():
        linear = model.get_submodule(name)
        sparsity = float((linear.weight == 0).float().mean())
        row = {"sparsity": sparsity, "sparse": False}
        if sparsity >= min_sparsity:
            d, c = time_linear(linear, x, repeats)
            row.update(dense_ms=d, csr_ms=c, speedup=d / c, sparse=d / c >= min_speedup)
            if row["sparse"]:
                parent, _, leaf = name.rpartition(".")
                setattr(model.get_submodule(parent) if parent else model, leaf, SparseLinear(linear))
        report[name] = row
    model.train(was_training)
    return model, report
