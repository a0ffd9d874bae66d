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
