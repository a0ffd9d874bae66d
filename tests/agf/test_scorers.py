"""Scorers against brute-force references computed one sample at a time with autograd."""
import torch
import torch.nn.functional as F

from agf.calibration import Calibrator
from agf.scorers import create_scorer
from experiments.sparsity.units import find_units

from toy_cnn import Toy, batches


def setup():
    torch.manual_seed(0)
    model = Toy().eval()
    units = find_units(model, torch.zeros(1, 2, 6, 6))
    data = batches()
    stats = Calibrator(model, units).run(data)
    return model, units, data, stats


def brute_agf(model, data):
    """1/T Σ_t mean_x Σ_p |Y ∂ℓ_x/∂Y| for unit conv1, each sample on its own (eval mode: samples independent)."""
    total = torch.zeros(model.conv1.out_channels)
    for x, y in data:
        per = torch.zeros_like(total)
        for i in range(len(x)):
            Y = model.trunk1(x[i:i + 1]).detach().requires_grad_(True)
            loss = F.cross_entropy(model.head1(Y), y[i:i + 1], reduction="sum")
            (g,) = torch.autograd.grad(loss, Y)
            per += (Y * g).abs().sum((0, 2, 3))
        total += per / len(x)
    return total / len(data)


def test_units_are_internal_channels_only():
    model, units, _, _ = setup()
    assert [u.name for u in units] == ["conv1", "conv2"]
    assert units[0].consumer is model.conv2 and units[0].bn is model.bn1


def test_agf_matches_brute_force():
    model, units, data, stats = setup()
    got = create_scorer("agf").bind(units, stats).unit_scores(units[0])
    torch.testing.assert_close(got, brute_agf(model, data), rtol=1e-4, atol=1e-7)


def test_taylor_matches_parameter_space_formula():
    model, units, data, stats = setup()
    ref = torch.zeros(model.conv1.out_channels)
    for x, y in data:
        model.zero_grad()
        F.cross_entropy(model(x), y, reduction="sum").backward()
        ref += (model.conv1.weight.grad * model.conv1.weight).sum((1, 2, 3)).detach() ** 2
    model.zero_grad()
    got = create_scorer("taylor").bind(units, stats).unit_scores(units[0])
    torch.testing.assert_close(got, ref / len(data), rtol=1e-4, atol=1e-8)


def test_signed_feature_taylor_equals_bn_gate_identity():
    """Spec §1.3: for BN→ReLU, g_γγ + g_ββ = Σ_{x,p} Y ∂L/∂Y, so taylor_signed·B = |g_γγ + g_ββ| per batch."""
    model, units, data, _ = setup()
    x, y = data[0]
    stats = Calibrator(model, units).run([(x, y)])
    model.zero_grad()
    F.cross_entropy(model(x), y, reduction="sum").backward()
    bn = model.bn1
    gate = (bn.weight.grad * bn.weight + bn.bias.grad * bn.bias).detach().abs()
    model.zero_grad()
    got = create_scorer("taylor_signed").bind(units, stats).unit_scores(units[0]) * len(x)
    torch.testing.assert_close(got, gate, rtol=1e-4, atol=1e-6)
    agf = create_scorer("agf").bind(units, stats).unit_scores(units[0]) * len(x)
    assert torch.all(agf >= got - 1e-6)    # |Σ| ≤ Σ|·|


def test_weight_and_activation_scorers_match_formulas():
    model, units, data, stats = setup()
    u = units[1]                                # conv2: input = relu1 output (6 channels)
    X = torch.cat([model.trunk1(x).detach() for x, _ in data])
    norm = X.pow(2).sum((0, 2, 3)).sqrt()       # ||X_j||_2 over samples × positions
    W = model.conv2.weight.detach().abs()       # [5, 6, 3, 3]
    wanda = (W * norm.view(1, -1, 1, 1)).sum((1, 2, 3))
    Wf = W.flatten(1)
    nf = norm.repeat_interleave(9)
    ria = ((Wf / Wf.sum(0, keepdim=True) + Wf / Wf.sum(1, keepdim=True)) * nf.sqrt()).sum(1)
    for name, ref in [("wanda", wanda), ("ria", ria), ("l1", W.sum((1, 2, 3)))]:
        torch.testing.assert_close(create_scorer(name).bind(units, stats).unit_scores(u), ref, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(create_scorer("bn_scale").bind(units, stats).unit_scores(units[0]),
                               model.bn1.weight.detach().abs())


def test_snip_uses_mean_gradient():
    model, units, data, stats = setup()
    g = torch.zeros_like(model.conv1.weight)
    for x, y in data:
        model.zero_grad()
        F.cross_entropy(model(x), y, reduction="sum").backward()
        g += model.conv1.weight.grad
    model.zero_grad()
    ref = (g / len(data) * model.conv1.weight.detach()).abs().sum((1, 2, 3))
    torch.testing.assert_close(create_scorer("snip").bind(units, stats).unit_scores(units[0]), ref, rtol=1e-4, atol=1e-7)


def test_group_importance_and_random_seeded():
    model, units, _, stats = setup()
    from experiments.sparsity.units import build_graph, out_fn
    dg = build_graph(model, torch.zeros(1, 2, 6, 6))
    sc = create_scorer("agf").bind(units, stats)
    group = dg.get_pruning_group(model.conv1, out_fn(model.conv1), idxs=[2, 4])
    torch.testing.assert_close(sc(group), sc.unit_scores(units[0])[[2, 4]])
    a = create_scorer("random", seed=3).bind(units, stats).unit_scores(units[0])
    b = create_scorer("random", seed=3).bind(units, stats).unit_scores(units[0])
    assert torch.equal(a, b)


def test_calibration_leaves_model_untouched_in_train_mode():
    model, units, data, _ = setup()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    Calibrator(model, units, mode="train").run(data)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in model.parameters())


def test_pre_activation_position_uses_bn_output():
    """Ablation §7 #1: Y = BN output (pre-ReLU); brute force with autograd on that tensor."""
    model, units, data, _ = setup()
    stats = Calibrator(model, units, position="pre_activation").run(data)
    ref = torch.zeros(model.conv1.out_channels)
    for x, y in data:
        Z = model.bn1(model.conv1(model.relu0(model.conv0(x)))).detach().requires_grad_(True)
        loss = F.cross_entropy(model.head1(model.relu1(Z)), y, reduction="sum")
        (g,) = torch.autograd.grad(loss, Z)
        ref += (Z * g).abs().sum((2, 3)).mean(0)
    got = create_scorer("agf").bind(units, stats).unit_scores(units[0])
    torch.testing.assert_close(got, ref / len(data), rtol=1e-4, atol=1e-7)


def test_bn_recalibration_matches_batch_statistics():
    from agf.method import recalibrate_bn
    model, _, data, _ = setup()
    recalibrate_bn(model, data)
    feats = torch.cat([model.conv1(model.relu0(model.conv0(x))).detach() for x, _ in data])
    torch.testing.assert_close(model.bn1.running_mean, feats.mean((0, 2, 3)), rtol=1e-4, atol=1e-6)
    assert not model.training
