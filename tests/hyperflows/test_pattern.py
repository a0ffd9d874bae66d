"""method.pattern: one-shot baselines choosing N:M masks (checked against a brute-force N:M selection)."""
import pytest
import torch
from torch import nn

from experiments.errors import ConfigError
from n_of_m_reference import brute_force


def test_method_pattern_needs_a_one_shot_method_and_its_sparsity():
    from hyperflows.gmp import GradualMagnitude
    from hyperflows.magnitude import OneShotMagnitude

    with pytest.raises(ConfigError, match="sparsity.target=0.5"):
        OneShotMagnitude(name="magnitude", target_sparsity=0.9, pattern="2:4")
    with pytest.raises(ConfigError, match="one-shot"):
        GradualMagnitude(name="gmp", target_sparsity=0.5, pattern="2:4")


class _Ctx:
    def __init__(self, model):
        self.model, self.metrics = model, {}


def test_magnitude_with_pattern_keeps_the_largest_two_of_every_four():
    from hyperflows.magnitude import OneShotMagnitude

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8 * 4 * 4, 12), nn.Linear(12, 4))
    ctx = _Ctx(model)
    masks = OneShotMagnitude(name="magnitude", target_sparsity=0.5, pattern="2:4").initial_masks(ctx)
    assert ctx.metrics["pattern"] == "2:4" and ctx.metrics["pattern_dense_layers"] == ["0"]   # 3 input channels
    for name in ("2", "3"):
        w = model.get_submodule(name).weight.detach()
        assert torch.equal(masks[name], brute_force(w.abs(), 2, 4))


def test_a_2_4_run_end_to_end_delivers_the_pattern_after_fine_tuning(tmp_path, monkeypatch):
    """``method=magnitude sparsity=50 method.pattern=2:4`` from the config: the finalized (fine-tuned) model has
    at most 2 non-zeros in every 4 weights of every layer (LeNet-300: every input size is a multiple of 4)."""
    from conftest import TINY, compose_cfg
    from experiments.pipeline import run
    from experiments.sparsity.n_of_m import satisfies
    from hyperflows.magnitude import OneShotMagnitude

    finals = []
    real_finalize = OneShotMagnitude.finalize

    def keep(self, model):
        finals.append(real_finalize(self, model))
        return finals[-1]
    monkeypatch.setattr(OneShotMagnitude, "finalize", keep)
    rec = run(compose_cfg(TINY + ["method=magnitude", "sparsity=50", "method.pattern=2:4"], tmp_path))["metrics"]
    assert rec["pattern"] == "2:4" and rec["pattern_dense_layers"] == []
    assert rec["sparsity"] == pytest.approx(0.5, abs=1e-6)
    layers = [m for m in finals[-1].modules() if isinstance(m, nn.Linear)]
    assert len(layers) == 3 and all(satisfies(m.weight, 2, 4) for m in layers)
