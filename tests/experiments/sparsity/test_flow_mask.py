"""Flow parametrization, pressure and finalize against autograd / brute-force references."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from experiments.sparsity.flow_mask import attach_flow_masks, flow_masked_weight, flow_parameters
from experiments.sparsity.masks import current_masks, finalize, global_magnitude_masks, keep_top, original_weights
from hyperflows.pressure import add_pressure_grad_, pressure_coefficient, pressure_loss


def toy_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 5))


def test_t_gradient_is_slope_times_w_times_grad_of_effective_weight():
    torch.manual_seed(0)
    layer = nn.Linear(6, 4)
    attach_flow_masks(layer, slope=0.25, seed=1)
    t = flow_parameters(layer)[""]
    with torch.no_grad():
        t[0, :3] = -0.1                       # three pruned weights
    x, y = torch.randn(8, 6), torch.randint(0, 4, (8,))
    F.cross_entropy(layer(x), y).backward()
    # reference: the effective weight ŵ = w ⊙ [t ≥ 0] as a leaf, plain autograd
    w = layer.parametrizations.weight.original.detach()
    w_hat = (w * (t.detach() >= 0)).requires_grad_()
    F.cross_entropy(F.linear(x, w_hat, layer.bias.detach()), y).backward()
    torch.testing.assert_close(t.grad, 0.25 * w * w_hat.grad)
    torch.testing.assert_close(layer.parametrizations.weight.original.grad, (t.detach() >= 0) * w_hat.grad)
    # a pruned weight gets no weight gradient but still a flow (t-gradient)
    assert torch.all(layer.parametrizations.weight.original.grad[0, :3] == 0)
    assert torch.all(t.grad[0, :3] != 0)


def test_mask_is_heaviside_with_ties_kept_and_slope_configurable():
    w = torch.tensor([1.0, 2.0, 3.0])
    t = torch.tensor([-1e-6, 0.0, 1.0], requires_grad=True)
    out = flow_masked_weight(w, t, slope=0.5)
    assert out.tolist() == [0.0, 2.0, 3.0]
    out.sum().backward()
    assert t.grad.tolist() == [0.5, 1.0, 1.5]


def test_every_conv_and_linear_weight_gets_a_flow_parameter_and_nothing_else():
    net = toy_net()
    masks = attach_flow_masks(net, init=0.2, seed=0)
    assert set(masks) == {"0", "3"}
    for name, t in flow_parameters(net).items():
        assert t.shape == original_weights(net)[name].shape and t.dtype == torch.float32
        assert float(t.detach().min()) >= 0.2 and float(t.detach().max()) <= 0.5     # U[t0, 2.5 t0]
    names = {n for n, _ in net.named_parameters()}
    assert "0.bias" in names and "3.bias" in names                  # biases stay plain parameters


def test_pressure_gradient_is_lambda_over_n_and_fast_path_matches_autograd():
    torch.manual_seed(0)
    ts = [torch.randn(3, 4, requires_grad=True), torch.randn(10, requires_grad=True)]
    lam, n = pressure_coefficient(0.8), 22
    assert lam == pytest.approx(0.8 ** 1.5)
    pressure_loss(ts, lam).backward()
    for t in ts:
        torch.testing.assert_close(t.grad, torch.full_like(t, lam / n))
    fast = [t.detach().clone().requires_grad_() for t in ts]
    for f in fast:
        f.grad = torch.zeros_like(f)
    add_pressure_grad_(fast, lam)
    for f, t in zip(fast, ts):
        torch.testing.assert_close(f.grad, t.grad)
    # thresholded variant: only t > −ε is pressured
    for t in ts:
        t.grad = None
    pressure_loss(ts, lam, threshold=0.3).backward()
    for f, t in zip(fast, ts):
        torch.testing.assert_close(t.grad, (t.detach() > -0.3).float() * lam / n)
        f.grad = torch.zeros_like(f)
    add_pressure_grad_(fast, lam, threshold=0.3)
    for f, t in zip(fast, ts):
        torch.testing.assert_close(f.grad, t.grad)


def test_finalize_gives_identical_outputs_and_plain_state_dict_and_leaves_a_copy_intact():
    net = toy_net()
    attach_flow_masks(net, seed=0)
    with torch.no_grad():
        for t in flow_parameters(net).values():
            t.copy_(torch.randn_like(t))       # about half pruned
    x = torch.randn(4, 2, 6, 6)
    ref = net(x)
    kept = {n: m.clone() for n, m in current_masks(net).items()}
    plain = finalize(copy.deepcopy(net))
    torch.testing.assert_close(plain(x), ref)
    torch.testing.assert_close(net(x), ref)     # finalizing a deepcopy must not break the original
    assert set(plain.state_dict()) == {"0.weight", "0.bias", "3.weight", "3.bias"}
    for name, layer in (("0", plain[0]), ("3", plain[3])):
        assert torch.equal(layer.weight != 0, kept[name])
    finalize(net)
    torch.testing.assert_close(net(x), ref)


def test_global_magnitude_and_keep_top_match_a_sort():
    torch.manual_seed(0)
    weights = {"a": torch.randn(5, 7), "b": torch.randn(11)}
    masks = global_magnitude_masks(weights, 0.25)
    flat = torch.cat([w.abs().flatten() for w in weights.values()])
    k = round(0.25 * flat.numel())
    threshold = flat.sort(descending=True).values[k - 1]
    assert sum(int(m.sum()) for m in masks.values()) == k
    for name, w in weights.items():
        assert torch.equal(masks[name], w.abs() >= threshold)
    assert not any(m.any() for m in keep_top(weights, 0.0).values())
