"""CSR inference for unstructured sparsity: same outputs as the dense layers, swapped only where measured faster."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from experiments.sparsity import sparse_inference
from experiments.sparsity.sparse_inference import SparseLinear, sparsify


def sparse_linear(n_in, n_out, sparsity, bias=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    layer = nn.Linear(n_in, n_out, bias=bias)
    with torch.no_grad():
        layer.weight[torch.rand(layer.weight.shape, generator=g) < sparsity] = 0.0
    return layer


@pytest.mark.parametrize("bias", [True, False])
def test_sparse_linear_computes_the_dense_layer_on_any_leading_shape(bias):
    layer = sparse_linear(20, 7, 0.9, bias)
    sparse = SparseLinear(layer)
    assert sparse.weight_csr.values().numel() == int((layer.weight != 0).sum())
    for shape in ((5, 20), (3, 4, 20), (1, 20)):
        x = torch.randn(shape)
        with torch.no_grad():
            torch.testing.assert_close(sparse(x), layer(x), rtol=1e-5, atol=1e-6)


def test_sparsify_swaps_only_sparse_layers_that_measured_faster(monkeypatch):
    model = nn.Sequential(nn.Flatten(), sparse_linear(16, 12, 0.95, seed=1), nn.ReLU(), sparse_linear(12, 8, 0.9, seed=2),
                          nn.ReLU(), sparse_linear(8, 4, 0.2, seed=3))
    scripted = {12: (2.0, 1.0), 8: (1.0, 1.5)}     # by out_features: (dense ms, csr ms)
    monkeypatch.setattr(sparse_inference, "time_linear", lambda layer, x, repeats: scripted[layer.out_features])
    x = torch.randn(6, 1, 4, 4)
    with torch.no_grad():
        want = model(x)
    fast, report = sparsify(model, x)
    assert isinstance(fast[1], SparseLinear) and isinstance(fast[3], nn.Linear) and isinstance(fast[5], nn.Linear)
    assert report["1"]["sparse"] and report["1"]["speedup"] == 2.0
    assert not report["3"]["sparse"] and "dense_ms" not in report["5"]   # 20 % sparse: not even timed
    assert report["5"]["sparsity"] == pytest.approx(float((model[5].weight == 0).float().mean()))
    with torch.no_grad():
        torch.testing.assert_close(fast(x), want, rtol=1e-5, atol=1e-6)
