"""Physical removal vs zeroing, predicted shapes/MACs, save → reload of pruned ResNet/WRN/ViT."""
import pytest
import torch
from torch import nn

from experiments.checkpoint import load_model, save_model
from experiments.measure import layer_macs
from experiments.models import create_model
from experiments.sparsity.removal import remove_channels
from experiments.sparsity.selection import select_keep
from experiments.sparsity.units import find_units


def build(name, **kw):
    torch.manual_seed(0)
    m = create_model(name, num_classes=10, in_channels=1, image_size=28, **kw).eval()
    with torch.no_grad():   # non-trivial BN so zeroed channels would show if BN were mis-sliced
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
    return m


def random_keep(units, ratio, seed=0):
    g = torch.Generator().manual_seed(seed)
    return select_keep({u.name: torch.rand(u.num_channels, generator=g) for u in units}, ratio)


def zeroed_output(model, units, keep, x):
    """Reference: multiply each consumer's input by a 0/1 channel mask (no removal)."""
    handles = []
    for u in units:
        mask = torch.zeros(u.num_channels)
        mask[keep[u.name]] = 1.0
        conv = isinstance(u.consumer, nn.Conv2d)
        handles.append(u.consumer.register_forward_pre_hook(
            lambda m, a, mask=mask, conv=conv: (a[0] * (mask.view(1, -1, 1, 1) if conv else mask),)))
    with torch.no_grad():
        out = model(x)
    for h in handles:
        h.remove()
    return out


def check_equivalence(name, **kw):
    model = build(name, **kw)
    x = torch.randn(4, 1, 28, 28)
    units = find_units(model, x[:1])
    keep = random_keep(units, 0.75)
    model.dense_widths = {u.name: u.num_channels for u in units}
    ref = zeroed_output(model, units, keep, x)
    remove_channels(model, x[:1], units, keep)
    with torch.no_grad():
        out = model(x)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    assert out.shape == (4, 10)
    return model, units, keep


def test_resnet_removal_equals_zeroing_and_macs_drop_as_predicted():
    dense = build("resnet8")
    x1 = torch.zeros(1, 1, 28, 28)
    dense_macs = layer_macs(dense, x1)
    model, units, keep = check_equivalence("resnet8")
    assert [u.name for u in units] == ["layer1.0.conv1", "layer2.0.conv1", "layer3.0.conv1"]
    macs = layer_macs(model, x1)
    for u in units:
        k, n = len(keep[u.name]), model.dense_widths[u.name]
        assert k == n // 4
        assert u.layer.out_channels == k
        consumer = u.name.replace("conv1", "conv2")
        assert macs[u.name] == dense_macs[u.name] * k // n          # fewer output channels
        assert macs[consumer] == dense_macs[consumer] * k // n      # fewer input channels
    untouched = set(dense_macs) - {u.name for u in units} - {u.name.replace("conv1", "conv2") for u in units}
    assert all(macs[n] == dense_macs[n] for n in untouched)


def test_wrn_and_vit_removal_equals_zeroing():
    model, units, keep = check_equivalence("wrn", depth=10, widen_factor=1)
    assert [u.name for u in units] == ["layer1.0.conv1", "layer2.0.conv1", "layer3.0.conv1"]   # depth 10: 1 block/stage
    model, units, keep = check_equivalence("vit_micro")
    assert [u.name for u in units] == [f"blocks.{i}.mlp.fc1" for i in range(4)]
    for i, blk in enumerate(model.blocks):
        assert blk.mlp.fc1.out_features == blk.mlp.fc2.in_features == 64
        assert blk.attn.qkv.out_features == 3 * 64                  # heads untouched


def test_pruned_models_reload_with_identical_outputs(tmp_path):
    x = torch.randn(3, 1, 28, 28)
    for name in ("resnet8", "vit_micro"):
        model = build(name)
        units = find_units(model, x[:1])
        remove_channels(model, x[:1], units, random_keep(units, 0.5, seed=1))
        path = save_model(tmp_path / f"{name}.pt", model, {"name": name, "num_classes": 10, "in_channels": 1,
                                                            "image_size": 28})
        loaded, _ = load_model(path)
        loaded.eval()
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), model(x))


def test_residual_groups_are_pruned_consistently_when_enabled():
    model = build("resnet8")
    x = torch.randn(2, 1, 28, 28)
    units = find_units(model, x[:1], include_residual=True)
    coupled = [u for u in units if u.coupled]
    assert coupled, "residual stream groups expected"
    keep = random_keep(units, 0.5)
    remove_channels(model, x[:1], units, keep)
    with torch.no_grad():
        assert model(x).shape == (2, 10)
    assert all(not any(p is model.conv1 for p in u.producers) for u in units)   # stem group protected
    for u in coupled:
        assert {p.out_channels for p in u.producers} == {len(keep[u.name])}
    assert model.fc.in_features == len(keep[coupled[-1].name])


def test_params_target_is_reached_and_counted_like_a_fresh_count():
    """target_kind=params: the bisected channel ratio removes at least the asked fraction of parameters, counted
    independently on the pruned model's state dict, and a visibly smaller ratio would not."""
    from experiments.sparsity.removal import channel_ratio_for

    model = build("resnet8")
    x = torch.randn(1, 1, 28, 28)
    units = find_units(model, x)
    g = torch.Generator().manual_seed(1)
    scores = {u.name: torch.rand(u.num_channels, generator=g) for u in units}
    dense_params = sum(v.numel() for k, v in model.state_dict().items() if not k.endswith(("running_mean",
                       "running_var", "num_batches_tracked")))
    ratio = channel_ratio_for(model, x, scores, 0.3, "params")

    def params_after(r):
        m = build("resnet8")
        remove_channels(m, x, find_units(m, x), select_keep(scores, r))
        return sum(v.numel() for k, v in m.state_dict().items() if not k.endswith(("running_mean", "running_var",
                   "num_batches_tracked")))
    assert 1 - params_after(ratio) / dense_params >= 0.3
    assert 1 - params_after(ratio - 0.05) / dense_params < 0.3


def test_latency_target_bisects_on_the_measured_cost_with_the_final_rounding(monkeypatch):
    """target_kind=latency: the bisection reads removal.latency_reduction (scripted here: padded MACs, a step
    function of the widths) and rounds widths as the final selection will, so the chosen ratio reaches the target."""
    import copy

    import pytest

    from experiments.measure import padded_macs
    from experiments.models import create_model
    from experiments.sparsity import removal
    from experiments.sparsity.selection import select_keep
    from experiments.sparsity.units import find_units

    model = create_model("resnet8", num_classes=10, in_channels=1, image_size=28).eval()
    x = torch.zeros(1, 1, 28, 28)
    monkeypatch.setattr(removal, "latency_reduction",
                        lambda base, m, ex: 1 - padded_macs(m, ex[:1], block=8) / padded_macs(base, ex[:1], block=8))
    units = find_units(model, x)
    g = torch.Generator().manual_seed(0)
    scores = {u.name: torch.rand(u.num_channels, generator=g) for u in units}

    def reduction(r):
        m = copy.deepcopy(model)
        remove_channels(m, x, find_units(m, x), select_keep(scores, r, round_to=8))
        return 1 - padded_macs(m, x, block=8) / padded_macs(model, x, block=8)

    ratio = removal.channel_ratio_for(model, x, scores, 0.4, "latency", round_to=8)
    assert reduction(ratio) >= 0.4
    assert reduction(ratio - 3e-4) < 0.4     # the smallest such ratio, to the bisection's 0.999 / 2^12
    with pytest.raises(ValueError, match="target_kind='watts'"):
        removal.cost(model, x, "watts")


def test_latency_reduction_times_both_models_in_alternation_so_a_slow_spell_cancels(monkeypatch):
    """The machine slows down 3x after the first round (a noisy neighbour): timed in alternation, each model keeps
    its best median, so the reduction is the true 1 - 2/5; a base timed once before a slow spell would not be."""
    from experiments import measure
    from experiments.sparsity import removal

    true_ms = {"base": 5.0, "cand": 2.0}
    slowdown = iter([1.0, 1.0, 3.0, 3.0, 3.0, 3.0])
    order = []
    monkeypatch.setattr(measure, "in_form", lambda m, form, x: (m, x))
    monkeypatch.setattr(measure, "latency_ms", lambda m, x, repeats: order.append(m) or true_ms[m] * next(slowdown))
    assert removal.latency_reduction("base", "cand", torch.zeros(1, 1, 4, 4)) == pytest.approx(1 - 2 / 5)
    assert order == ["base", "cand"] * 3
