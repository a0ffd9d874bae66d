"""The in-backward flow step (pressure folded in, Adam inside backward, no t.grad) against the reference step
(t.grad, the pressure pass, torch.optim.Adam after backward): same t, masks, weights and Adam state, to the bit."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from experiments.sparsity.flow_mask import attach_flow_masks, flow_parameters
from experiments.train import Trainer, create_schedule
from hyperflows.method import Hyperflows


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 32), nn.ReLU(), nn.Linear(32, 10))


def batches(n: int = 25) -> list:
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(32, 1, 8, 8, generator=g), torch.randint(0, 10, (32,), generator=g)) for _ in range(n)]


def train(flow_step: str, threshold: float | None, epochs: int = 4, grad_clip: float | None = None):
    model = mlp()
    attach_flow_masks(model, seed=0)
    method = Hyperflows(target_sparsity=0.8, epochs=epochs, seed=0, flow_step=flow_step, flow_lr=0.05,
                        pressure={"threshold": threshold})
    cb = method.make_callback(model)
    trainer = Trainer(model, batches(), {}, schedule=create_schedule(epochs=epochs, lr=0.05, name="cosine"),
                      optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4},
                      callbacks=[cb], progress=False, grad_clip=grad_clip)
    grads_seen = []
    step = cb.on_after_step

    def spy(tr):          # after each optimizer step: does any t hold a .grad?
        grads_seen.append(any(t.grad is not None for t in cb.ts))
        step(tr)
    cb.on_after_step = spy
    trainer.fit()
    return model, cb, grads_seen


@pytest.mark.parametrize("threshold", [None, 0.3])
def test_in_backward_step_equals_the_reference_step_bit_for_bit(threshold):
    ref_model, ref_cb, ref_grads = train("optimizer", threshold)
    model, cb, grads = train("in_backward", threshold)
    assert cb.in_backward and not ref_cb.in_backward
    assert all(ref_grads) and not any(grads)            # the reference keeps t.grad; the fused step never makes one
    assert 0.0 < cb.density() < 0.95                    # the pressure acted: the comparison covers pruning steps
    for (name, t_ref), t in zip(flow_parameters(ref_model).items(), flow_parameters(model).values()):
        assert torch.equal(t_ref, t), name
        st_ref, st = ref_cb.flow_opt.state[t_ref], cb.flow_opt.state[t]
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(st_ref[key], st[key]), (name, key)
    for p_ref, p in zip(ref_model.state_dict().values(), model.state_dict().values()):
        assert torch.equal(p_ref, p)
    # the optimizer's state round-trips as before (resume)
    assert set(cb.flow_opt.state_dict()["state"]) == set(ref_cb.flow_opt.state_dict()["state"])


def test_gradient_clipping_falls_back_to_the_reference_step():
    model, cb, grads = train("in_backward", None, epochs=2, grad_clip=1.0)
    assert not cb.in_backward and all(grads)


def test_sinks_are_detached_after_the_fit():
    model, cb, _ = train("in_backward", None, epochs=2)
    before = {k: t.clone() for k, t in flow_parameters(model).items()}
    out = model(torch.randn(4, 1, 8, 8)).sum()
    out.backward()                                      # outside the fit: t gets an ordinary gradient, no update
    for k, t in flow_parameters(model).items():
        assert torch.equal(t.detach(), before[k]) and t.grad is not None


def test_unknown_flow_step_is_one_line():
    from experiments.errors import ConfigError
    with pytest.raises(ConfigError, match="method.flow_step"):
        Hyperflows(target_sparsity=0.5, epochs=2, seed=0, flow_step="fast")


def test_stochastic_rounding_picks_a_neighbour_with_the_right_probability():
    from hyperflows.flow_step import stochastic_round_bf16
    x = torch.tensor([0.30001, -0.7777, 1e-3, 5.0])
    lo = x.to(torch.bfloat16).float()            # bracket each x by its bf16 neighbours (brute force via nextafter)
    down = torch.where(lo.abs() <= x.abs(), lo, torch.nextafter(lo.to(torch.bfloat16), torch.zeros((), dtype=torch.bfloat16)).float())
    up = torch.nextafter(down.to(torch.bfloat16), torch.where(x > 0, 1e9, -1e9).to(torch.bfloat16)).float()
    n = 20000
    draws = stochastic_round_bf16(x.repeat(n, 1), torch.Generator().manual_seed(0)).float()
    assert torch.all((draws == down) | (draws == up))
    p_up = ((x - down) / (up - down)).abs()       # the unbiased rule: E[draw] = x
    freq = (draws == up).float().mean(0)
    sigma = (p_up * (1 - p_up) / n).sqrt()
    assert torch.all((freq - p_up).abs() <= 5 * sigma + 1e-6)


def test_bf16_flows_keep_small_adam_updates_that_round_to_nearest_drops():
    from hyperflows.flow_step import stochastic_round_bf16
    t = torch.full((100000,), 0.5)
    moved = t - 1e-4                              # an Adam step of 1e-4: far below half a bf16 step at 0.5 (~1e-3)
    assert torch.equal(moved.to(torch.bfloat16).float(), t)          # round-to-nearest: the update is lost
    sr = stochastic_round_bf16(moved, torch.Generator().manual_seed(1)).float()
    assert abs(float(sr.mean()) - float(moved.mean())) < 2e-5        # stochastic rounding keeps it on average


@pytest.mark.parametrize("flow_step", ["in_backward", "kernel"])
def test_bf16_flows_train_like_fp32_flows_with_half_their_state(flow_step):
    if flow_step == "kernel":
        from hyperflows.flow_kernel import load
        if load() is None:
            pytest.skip("no C++ toolchain")

    def run(dtype: str):
        model = mlp()
        method = Hyperflows(target_sparsity=0.8, epochs=4, seed=0, flow_lr=0.05, flow_dtype=dtype, flow_step=flow_step)
        from experiments.sparsity.flow_mask import attach_flow_masks as attach
        attach(model, seed=0, dtype=method.granularity.dtype)
        cb = method.make_callback(model)
        trainer = Trainer(model, batches(), {}, schedule=create_schedule(epochs=4, lr=0.05, name="cosine"),
                          optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.9}, callbacks=[cb], progress=False)
        low = [t.dtype for t in cb.ts]
        trainer.fit()
        state = [v.dtype for t in cb.ts for k, v in cb.flow_opt.state[t].items() if k != "step"]
        return cb.density(), low, state, [t.dtype for t in cb.ts]
    d32, *_ = run("float32")
    d16, during, state, after = run("bfloat16")
    assert set(during) == {torch.bfloat16} and set(state) == {torch.bfloat16}
    assert set(after) == {torch.float32}                            # back to fp32 for snap/finalize
    assert abs(d16 - d32) < 0.03, (d16, d32)


def test_bf16_flows_need_the_in_backward_step():
    from experiments.errors import ConfigError
    with pytest.raises(ConfigError, match="flow_dtype"):
        Hyperflows(target_sparsity=0.5, epochs=2, seed=0, flow_step="optimizer", flow_dtype="bfloat16")


@pytest.mark.parametrize("slope", [0.25, 0.3])
@pytest.mark.parametrize("pressure", [0.0, 3.7e-6, "tensor"])
def test_flow_gradient_rounds_as_the_reference(slope, pressure):
    from hyperflows.flow_step import InBackwardFlowStep
    g = torch.Generator().manual_seed(0)
    grad_out, w = torch.randn(300, 200, generator=g), torch.randn(300, 200, generator=g)
    p = (torch.rand(300, 200, generator=g) > 0.5).float().mul_(3.7e-6) if pressure == "tensor" else pressure
    ref = (grad_out * w).mul_(slope)                    # the reference: autograd's ∂L/∂t, then the pressure pass
    if pressure == "tensor":
        ref.add_(p)
    elif pressure:
        torch._foreach_add_([ref], pressure)
    assert torch.equal(InBackwardFlowStep.flow_grad(grad_out, w, slope, p), ref)


@pytest.mark.parametrize("threshold", [None, 0.3])
def test_compiled_kernel_step_gives_the_masks_of_the_pytorch_step(threshold):
    """method.flow_step=kernel (one C++ pass per layer) against the pure-PyTorch in-backward step: the same masks at
    the end of 4 epochs of pruning, flows and weights equal up to float rounding (the kernel's Adam is fp32 where
    torch's fused kernel rounds its scalar tail in double)."""
    from hyperflows.flow_kernel import KernelFlowStep, load

    if load() is None:
        pytest.skip("no C++ toolchain: the kernel falls back to the PyTorch step (tested above)")
    ref_model, ref_cb, _ = train("in_backward", threshold)
    model, cb, grads = train("kernel", threshold)
    assert isinstance(cb.sink, KernelFlowStep) and not any(grads)
    assert 0.0 < cb.density() < 0.95
    for (name, t_ref), t in zip(flow_parameters(ref_model).items(), flow_parameters(model).values()):
        assert torch.equal(t_ref >= 0, t >= 0), name
        torch.testing.assert_close(t, t_ref, rtol=1e-5, atol=1e-6)
        for key in ("exp_avg", "exp_avg_sq", "step"):
            torch.testing.assert_close(cb.flow_opt.state[t][key], ref_cb.flow_opt.state[t_ref][key],
                                       rtol=1e-5, atol=1e-7)
    for p_ref, p in zip(ref_model.state_dict().values(), model.state_dict().values()):
        torch.testing.assert_close(p, p_ref, rtol=1e-5, atol=1e-6)


def test_kernel_forward_and_backward_match_autograd_of_the_formula():
    """One step of the kernel against the formula written with autograd: ŵ = w ⊙ [t ≥ 0], ∂L/∂w = m ⊙ ∂L/∂ŵ,
    and t moved by Adam's first step on c·w ⊙ ∂L/∂ŵ + p (|Δt| = lr·sign(grad) at step 1)."""
    from experiments.sparsity.flow_mask import flow_masked_weight
    from hyperflows.flow_kernel import kernel_or_none
    from hyperflows.flow_step import InBackwardFlowStep

    torch.manual_seed(0)
    w = torch.randn(37, 29, requires_grad=True)
    t = nn.Parameter(torch.randn(37, 29))
    opt = torch.optim.Adam([t], lr=1e-2, fused=True)
    sink = kernel_or_none(InBackwardFlowStep(opt, lambda _: 0.125))
    if sink is None:
        pytest.skip("no C++ toolchain")
    x = torch.randn(5, 29)
    t0 = t.detach().clone()
    out = flow_masked_weight(w, t, 0.25, sink)
    assert torch.equal(out, w.detach() * (t0 >= 0).float())
    (x @ out.T).square().sum().backward()
    w_ref = w.detach().clone().requires_grad_(True)
    ref = w_ref * (t0 >= 0).float()
    (x @ ref.T).square().sum().backward()
    torch.testing.assert_close(w.grad, w_ref.grad)
    g_hat = 2 * (x @ ref.T).T @ x                              # ∂L/∂ŵ
    flow = 0.25 * w.detach() * g_hat.detach() + 0.125
    torch.testing.assert_close(t.detach() - t0, -1e-2 * torch.sign(flow), rtol=1e-3, atol=1e-6)
    assert t.grad is None


def test_bf16_kernel_rounds_the_fp32_kernel_result_to_a_neighbour_without_bias():
    """The bf16 kernel step against the fp32 kernel on the same (upcast) state: ∂L/∂w identical; t and both moments
    each one of the two bf16 neighbours of the fp32 result, the upper one with probability (low 16 bits)/2^16: the
    round-ups among 2·10^5 elements are within 5σ of their expectation in each eighth of that probability."""
    from hyperflows.flow_kernel import load

    mod = load()
    if mod is None:
        pytest.skip("no C++ toolchain")
    g = torch.Generator().manual_seed(0)
    n = 200_000
    grad, w = torch.randn(n, generator=g), torch.randn(n, generator=g)
    state16 = [torch.randn(n, generator=g).bfloat16(), (torch.randn(n, generator=g) * 1e-3).bfloat16(),
               (torch.rand(n, generator=g) * 1e-6).bfloat16()]
    state32 = [x.float() for x in state16]
    args = (0.25, 1e-6, None, 10, 1e-3, 0.9, 0.999, 1e-8, 0.0)
    gw32 = mod.flow_step(grad, w, *state32, *args, 0)
    gw16 = mod.flow_step(grad, w, *state16, *args, 987654321)
    assert torch.equal(gw16, gw32)
    for name, low, ref in zip(("t", "exp_avg", "exp_avg_sq"), state16, state32):
        bits = ref.view(torch.int32).to(torch.int64) & 0xFFFFFFFF
        down, frac = bits & 0xFFFF0000, bits & 0xFFFF
        got = (low.view(torch.int16).to(torch.int64) & 0xFFFF) << 16
        up = got == down + 0x10000
        assert torch.all((got == down) | up), name
        p_up = frac.double() / 65536
        for lo in torch.arange(0, 1, 0.125):                 # calibrated in each eighth of [0, 1): not round-to-nearest
            sel = (p_up >= lo) & (p_up < lo + 0.125)
            sigma = float((p_up[sel] * (1 - p_up[sel])).sum().sqrt())
            assert abs(float(up[sel].sum()) - float(p_up[sel].sum())) < 5 * sigma + 1, (name, float(lo))


def test_kernel_backward_runs_in_cpp_and_a_strided_weight_gets_the_same_step():
    """The kernel's step is the C++ autograd function (no Python node in the graph); a transposed view of the same
    weight goes in as a contiguous copy: t, Adam's state and ∂L/∂w come out equal."""
    from experiments.sparsity.flow_mask import flow_masked_weight
    from hyperflows.flow_kernel import kernel_or_none
    from hyperflows.flow_step import InBackwardFlowStep

    torch.manual_seed(0)
    base, t0, x = torch.randn(29, 37), torch.randn(37, 29), torch.randn(5, 29)
    results = []
    for strided in (False, True):
        w = base.clone().requires_grad_(True) if strided else base.T.contiguous().requires_grad_(True)
        t = nn.Parameter(t0.clone())
        sink = kernel_or_none(InBackwardFlowStep(torch.optim.Adam([t], lr=1e-2, fused=True), lambda _: 0.125))
        if sink is None:
            pytest.skip("no C++ toolchain")
        weight = w.T if strided else w
        assert weight.is_contiguous() != strided
        out = flow_masked_weight(weight, t, 0.25, sink)
        node = out.grad_fn.name()
        (x @ out.T).square().sum().backward()
        grad = w.grad.T if strided else w.grad
        results.append((node, t.detach().clone(), sink.inner.optimizer.state[t]["exp_avg"].clone(), grad.clone()))
    (node, *a), (strided_node, *b) = results
    assert "FlowWeight" in node and "FlowWeight" in strided_node
    for u, v in zip(a, b):
        assert torch.equal(u, v)


def test_in_backward_step_uses_the_lr_the_trainer_sets_after_a_resume():
    """Resuming loads the flows' optimizer state, which replaces its param-group dicts; the step must read the LR
    from the current group (the trainer sets each epoch's flow LR there), not from the one it was built with."""
    from hyperflows.flow_step import InBackwardFlowStep
    from hyperflows.method import adam

    t = nn.Parameter(torch.zeros(10))
    opt = adam([t], 1e-3)
    sink = InBackwardFlowStep(opt, lambda _: 0.0)
    opt.load_state_dict(opt.state_dict())            # as a resume does
    opt.param_groups[0]["lr"] = 0.5                  # as Trainer.set_lr does at the next epoch
    sink(t, torch.ones(10), torch.ones(10), torch.ones(10), 0.25)
    torch.testing.assert_close(t.detach(), torch.full((10,), -0.5))   # Adam's first step: lr · sign(grad)
