"""Structured Hyperflows (``method=hyperflows_structured``): flows on channels, checked against references."""
from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
from conftest import TINY, compose_cfg

from experiments.measure import count_macs
from experiments.sparsity.channel_gate import attach_channel_gates, gates_of
from experiments.sparsity.removal import remove_channels
from experiments.sparsity.units import find_units
from experiments.sparsity.width_cost import WidthCost, measure_width_cost
from hyperflows.pressure import add_pressure_grad_, pressure_loss
from hyperflows.scheduler import cost_threshold
from hyperflows.structured import UnitFlows
from toy_cnn import Toy, batches


def toy(seed=0):
    torch.manual_seed(seed)
    return Toy().eval()


def consumer_inputs(model, x, y):
    """Y (the input each unit's consumer reads) and ∂L/∂Y, by autograd on the ungated model."""
    seen = {}

    def grab(name):
        def hook(_, args):
            a = args[0]
            a.retain_grad()
            seen[name] = a
        return hook
    hooks = [model.conv2.register_forward_pre_hook(grab("conv1")), model.fc.register_forward_pre_hook(grab("conv2"))]
    torch.nn.functional.cross_entropy(model(x), y).backward()
    for h in hooks:
        h.remove()
    return {k: (v.detach(), v.grad.detach()) for k, v in seen.items()}


def test_gate_gradient_is_the_signed_feature_space_taylor_term():
    """∂L/∂t_c = slope · Σ_{batch, positions} Y_c · ∂L/∂Y_c (AGF's utility before the absolute value)."""
    x, y = batches(1)[0]
    ref_model = toy()
    ref = consumer_inputs(ref_model, x, y)
    model = copy.deepcopy(ref_model)
    units = find_units(model, x[:1])
    assert [u.name for u in units] == ["conv1", "conv2"]
    gates = attach_channel_gates(model, units, slope=0.25)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    ya, ga = ref["conv1"]
    assert torch.allclose(gates["conv1"].t.grad, 0.25 * (ya * ga).sum(dim=(0, 2, 3)), atol=1e-6)
    yb, gb = ref["conv2"]
    assert torch.allclose(gates["conv2"].t.grad, 0.25 * (yb * gb).sum(dim=0), atol=1e-6)
    # the weights see the gated model's gradient: the same as the ungated one while every gate is open
    assert torch.allclose(model.conv1.weight.grad, ref_model.conv1.weight.grad, atol=1e-6)


def attached(model, x, cost="macs"):
    """A UnitFlows attached to ``model`` through a minimal stage context."""
    ctx = SimpleNamespace(model=model, data=SimpleNamespace(example_input=lambda n: x[:n]), metrics={},
                          model_spec={"name": "toy"})
    flows = UnitFlows({"cost": cost})
    flows.attach(ctx)
    return flows, ctx


def close_some(model, pattern):
    """Gate off the channels where ``pattern[unit]`` is False (t = −1), others open (t = +1)."""
    gates = gates_of(model)
    with torch.no_grad():
        for consumer, keep in pattern.items():
            gates[consumer].t.copy_(torch.where(torch.tensor(keep), 1.0, -1.0))


def test_removing_gated_off_channels_computes_what_the_gated_model_computes():
    x, _ = batches(1, b=4)[0]
    model = toy()
    flows, _ = attached(model, x)
    close_some(model, {"conv2": [True, False, True, False, True, True], "fc": [False, True, True, False, True]})
    with torch.no_grad():
        gated = model(x)
    pruned = flows.finalize(model)
    assert (pruned.conv1.out_channels, pruned.conv2.in_channels, pruned.bn1.num_features) == (4, 4, 4)
    assert (pruned.conv2.out_channels, pruned.fc.in_features) == (3, 3)
    assert not gates_of(pruned) and not pruned.conv2._forward_pre_hooks
    with torch.no_grad():
        assert torch.allclose(pruned(x), gated, atol=1e-5)


def test_a_unit_gated_off_entirely_keeps_its_largest_flow():
    x, _ = batches(1, b=2)[0]
    model = toy()
    flows, _ = attached(model, x)
    with torch.no_grad():
        gates_of(model)["fc"].t.copy_(torch.tensor([-0.5, -0.1, -0.9, -0.3, -0.2]))
    assert flows.finalize(model).conv2.out_channels == 1


@pytest.mark.parametrize("cost", ["macs", "params"])
def test_cost_weighted_density_is_the_measured_cost_of_the_removed_model(cost):
    """Flows.density (fixed + Σ c·m) / total equals the MACs (params) counted on the physically smaller model."""
    x, _ = batches(1, b=2)[0]
    base = toy()
    def measure(m):   # measured after finalize, so no gate parameters are left
        return count_macs(m, x[:1])["macs_dense"] if cost == "macs" else sum(p.numel() for p in m.parameters())
    dense = measure(base)
    g = torch.Generator().manual_seed(3)
    for _ in range(4):
        model = copy.deepcopy(base)
        flows, _ = attached(model, x, cost)
        keep1 = (torch.rand(6, generator=g) > 0.5).tolist()
        keep2 = (torch.rand(5, generator=g) > 0.4).tolist()
        keep1[0] = keep2[0] = True
        close_some(model, {"conv2": keep1, "fc": keep2})
        density = flows.flows(model).density()
        assert density == pytest.approx(measure(flows.finalize(model)) / dense, rel=1e-9)


def test_cost_weighted_pressure_gradient_is_autograd_of_the_pressure_loss():
    g = torch.Generator().manual_seed(0)
    ts = [torch.randn(6, generator=g), torch.randn(5, generator=g)]
    costs = [torch.full((6,), 3.0), torch.full((5,), 7.0)]
    total = sum(float(c.sum()) for c in costs)
    shares = [c / total for c in costs]
    for threshold in (None, 0.3):
        auto = [t.clone().requires_grad_() for t in ts]
        pressure_loss(auto, 2.0, threshold, shares).backward()
        manual = [t.clone().requires_grad_() for t in ts]
        add_pressure_grad_(manual, 2.0, threshold, shares)
        for a, m in zip(auto, manual):
            assert torch.allclose(a.grad, m.grad)
    # brute force: λ Σ share_i t_i
    assert float(pressure_loss(ts, 2.0, None, shares)) == pytest.approx(
        2.0 * sum(float(t[i]) * float(s[i]) for t, s in zip(ts, shares) for i in range(len(t))))


def test_cost_threshold_keeps_the_largest_flows_whose_widths_cost_closest_to_the_budget():
    """Brute force: every prefix of the flows sorted from the largest (each unit's largest always kept), its cost
    evaluated from scratch; τ is the last flow of the prefix whose cost is closest to the budget (a tie: the larger
    prefix; the cost grows with the prefix, so no longer prefix is closer)."""
    cost = WidthCost(total=100.0, channels=(7, 4), alpha=(6.0, 9.0), beta=((0, 1, 1.5),))
    g = torch.Generator().manual_seed(1)
    ts = [torch.randn(7, generator=g), torch.randn(4, generator=g)]
    rest = sorted(((float(v), u) for u, t in enumerate(ts) for v in t.sort(descending=True).values[1:]), reverse=True)
    assert cost.cost([1, 1]) == pytest.approx(64.0)
    costs = [cost.cost([1 + sum(1 for _, u in rest[:i] if u == unit) for unit in range(2)])
             for i in range(len(rest) + 1)]
    for budget in (30.0, 70.0, 72.0, 85.0, 88.0, 99.0, 100.0):
        best = min(range(len(costs)), key=lambda i: (abs(costs[i] - budget), -i))
        tau = cost_threshold(ts, cost, budget)
        if best == 0:         # the narrowest network is closest: nothing beyond each unit's largest stays open
            assert all(int((t >= tau).sum()) == 0 for t in ts)
        else:
            assert tau == rest[best - 1][0]
        kept = [max(1, int((t >= tau).sum())) for t in ts]
        assert cost.cost(kept) == pytest.approx(costs[best])
        assert abs(costs[best] - budget) <= min(abs(c - budget) for c in costs) + 1e-9


def test_width_cost_is_exact_for_a_chain_of_units():
    """LeNet-style chain (conv1 feeds conv2, both units): the bilinear form gives the measured MACs at any widths."""
    x, _ = batches(1, b=2)[0]
    model = toy()
    units = find_units(model, x[:1])
    wc = measure_width_cost(model, x[:1], units, "macs", lambda m: find_units(m, x[:1]))
    assert wc.beta and wc.beta[0][:2] == (0, 1)
    for kept in ((6, 5), (3, 5), (6, 2), (1, 1), (4, 3)):
        m = copy.deepcopy(model)
        mu = find_units(m, x[:1])
        remove_channels(m, x[:1], mu, {u.name: torch.arange(k) for u, k in zip(mu, kept)})
        assert wc.cost(kept) == pytest.approx(count_macs(m, x[:1])["macs_dense"], rel=1e-12)
    # marginal = the cost of one more channel, measured
    kept = [3, 2]
    step = [wc.cost([4, 2]) - wc.cost(kept), wc.cost([3, 3]) - wc.cost(kept)]
    assert wc.marginal(kept) == pytest.approx(step)


def test_structured_hyperflows_run_removes_channels_to_the_asked_mac_fraction(tmp_path):
    """The pipeline: flows on LeNet-5's units, the closed loop + snap at 50 % of the MACs, physical removal, the
    record's MACs within ±2 % of the target, kept widths recorded, the saved model reloads and agrees."""
    from experiments.checkpoint import load_model
    from experiments.pipeline import run

    rec = run(compose_cfg(TINY + ["model=lenet5", "method=hyperflows_structured", "sparsity.target=0.5",
                                  "trainer.epochs=3", "trainer.max_steps_per_epoch=4", "method.flow_lr=0.05",
                                  "method.figures=false", "save_checkpoints=true"], tmp_path))
    assert rec["status"] == "ok"
    m = rec["metrics"]
    assert m["macs_effective"] / m["dense_macs"] == pytest.approx(0.5, abs=0.02)
    assert m["mac_reduction"] == pytest.approx(m["dense_macs"] / m["macs_effective"])
    assert m["density"] == pytest.approx(m["macs_effective"] / m["dense_macs"], abs=1e-3)
    model, _ = load_model(rec["checkpoints"]["final"])
    units = find_units(model, torch.zeros(1, 1, 28, 28))
    assert len(units) == 3 and m["kept_channels"] == {u.name: u.num_channels for u in units}
    assert sum(m["kept_channels"].values()) < 16 + 120 + 84   # conv1 is the stem (kept whole)
    assert m["params_total"] == sum(p.numel() for p in model.parameters())
    assert len(m["hyperflows_history"]["density"]) == 3


def test_a_target_beyond_what_units_can_remove_is_a_config_error(tmp_path):
    from experiments.pipeline import RunFailed, run

    with pytest.raises(RunFailed, match=r"sparsity.target=0.95 is unreachable with method.granularity=units"):
        run(compose_cfg(TINY + ["model=lenet5", "method=hyperflows_structured", "sparsity.target=0.95",
                                "method.figures=false"], tmp_path))


def resnet8():
    from experiments.models import create_model
    torch.manual_seed(0)
    model = create_model("resnet8", num_classes=10, in_channels=1, image_size=12).eval()
    with torch.no_grad():   # non-trivial BN statistics, so a wrong channel mapping shows
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 1.5)
    return model


def residual_units(model, x):
    units = find_units(model, x[:1], include_residual=True)
    coupled = [u for u in units if u.coupled]
    assert coupled and any(len(u.consumers) > 1 for u in coupled)   # a residual group may have several readers
    return units


def test_residual_group_gate_gradient_sums_the_taylor_term_over_every_reader():
    """One gate per coupled group, before each consumer: ∂L/∂t_c = slope · Σ_consumers Σ Y_c·∂L/∂Y_c, checked
    against a hand-made shared multiplier m (ones) before the same consumers, differentiated by autograd."""
    x, y = torch.randn(4, 1, 12, 12), torch.randint(0, 10, (4,))
    ref_model = resnet8()
    ref_units = residual_units(ref_model, x)
    ms = {u.name: torch.ones(u.num_channels, requires_grad=True) for u in ref_units}

    def mult(m):
        def hook(module, args):
            shape = [1] * args[0].dim()
            shape[1 if isinstance(module, torch.nn.Conv2d) else -1] = -1
            return (args[0] * m.view(shape), *args[1:])
        return hook
    for u in ref_units:
        for c in u.consumers:
            c.register_forward_pre_hook(mult(ms[u.name]))
    torch.nn.functional.cross_entropy(ref_model(x), y).backward()

    model = resnet8()
    gates = attach_channel_gates(model, residual_units(model, x), slope=0.25)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    for name, gate in gates.items():
        assert torch.allclose(gate.t.grad, 0.25 * ms[name].grad, atol=1e-6), name


def test_removing_gated_off_residual_channels_computes_what_the_gated_model_computes():
    x = torch.randn(3, 1, 12, 12)
    model = resnet8()
    ctx = SimpleNamespace(model=model, data=SimpleNamespace(example_input=lambda n: x[:n]), metrics={},
                          model_spec={"name": "resnet8"})
    flows = UnitFlows({"include_residual": True})
    flows.attach(ctx)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for gate in {id(v): v for v in gates_of(model).values()}.values():
            gate.t.copy_(torch.where(torch.rand(gate.t.shape, generator=g) < 0.4, -1.0, 1.0))
            gate.t[0] = 1.0
        gated = model(x)
    widths = {u.name: int((gates_of(model)[flows.consumer_of[u.name]].t >= 0).sum())
              for u in find_units(model, x[:1], include_residual=True)}
    density = flows.flows(model).density()
    pruned = flows.finalize(model)
    assert not gates_of(pruned)
    after = {u.name: u.num_channels for u in find_units(pruned, x[:1], include_residual=True)}
    assert after == widths and any(w < 16 for w in widths.values())
    with torch.no_grad():
        assert torch.allclose(pruned(x), gated, atol=1e-5)
    # the width-cost form counts the removed model's MACs exactly, residual groups included
    assert density == pytest.approx(count_macs(pruned, x[:1])["macs_dense"] / count_macs(resnet8(), x[:1])["macs_dense"],
                                    rel=1e-9)
