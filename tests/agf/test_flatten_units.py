"""A conv whose output is flattened into a Linear (LeNet-5 conv2 -> fc1) is scored per channel."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from agf.calibration import Calibrator
from agf.scorers import SCORERS, create_scorer
from experiments.models import create_model
from experiments.sparsity.units import find_units


def lenet5_and_batches(n_batches=3, bs=16):
    torch.manual_seed(0)
    model = create_model("lenet5", num_classes=10, in_channels=1, image_size=28)
    g = torch.Generator().manual_seed(1)
    batches = [(torch.rand(bs, 1, 28, 28, generator=g), torch.randint(0, 10, (bs,), generator=g))
               for _ in range(n_batches)]
    return model, batches


def brute_force_agf(model, batches, channels=16):
    """E_x Σ_p |Y ⊙ ∂L/∂Y| per conv2 channel, Y = fc1's input, by autograd on the flattened map."""
    total = torch.zeros(channels)
    for x, y in batches:
        feats = {}

        def grab(_m, args):
            args[0].retain_grad()
            feats["y"] = args[0]
        h = model.fc1.register_forward_pre_hook(grab)
        model.zero_grad()
        F.cross_entropy(model(x), y, reduction="sum").backward()
        h.remove()
        yg = (feats["y"] * feats["y"].grad).abs().view(len(y), channels, -1)   # [B, C, 5·5]
        total += yg.sum(2).mean(0).detach()
    return total / len(batches)


def test_conv_into_linear_gets_one_agf_score_per_channel_equal_to_brute_force():
    model, batches = lenet5_and_batches()
    model.eval()
    units = find_units(model, batches[0][0][:1])
    conv2 = next(u for u in units if u.name == "conv2")
    stats = Calibrator(model, units).run(batches)
    assert stats["conv2"]["agf"].shape == (16,)
    torch.testing.assert_close(stats["conv2"]["agf"], brute_force_agf(model, batches), rtol=1e-5, atol=1e-6)
    for name in SCORERS:   # every scorer: one score per channel
        sc = create_scorer(name).bind(units, stats)
        assert sc.unit_scores(conv2).numel() == 16, name


def test_lenet5_structured_run_keeps_as_many_conv2_channels_whatever_the_scorer(tmp_path):
    from conftest import TINY, compose_cfg
    from experiments.pipeline import run

    kept = {}
    for scorer in ("agf", "l1"):
        rec = run(compose_cfg(TINY + ["model=lenet5", "method=structured", f"scorer={scorer}", "sparsity=75",
                                      "method.calibration.batches=2", f"experiment_name=l5{scorer}"], tmp_path))
        kept[scorer] = rec["metrics"]["sparsity"]
    assert kept["agf"] == pytest.approx(kept["l1"], abs=1e-9)   # same widths removed: the same weight sparsity
