"""N:M masks against a brute-force reference."""
import pytest
import torch
from n_of_m_reference import brute_force

from experiments.errors import ConfigError
from experiments.sparsity.n_of_m import keep_n_of_m, n_of_m_masks, parse_pattern, satisfies


@pytest.mark.parametrize("shape,n,m", [((6, 8), 2, 4), ((5, 12), 1, 4), ((4, 8, 3, 3), 2, 4), ((3, 16, 2, 1), 2, 8)])
def test_keep_n_of_m_matches_brute_force(shape, n, m):
    score = torch.randn(shape, generator=torch.Generator().manual_seed(0))   # continuous: no ties
    keep = keep_n_of_m(score, n, m)
    assert keep.shape == score.shape
    assert torch.equal(keep, brute_force(score, n, m))
    assert keep.float().mean().item() == pytest.approx(n / m)


def test_groups_run_along_the_input_channels_of_a_conv():
    """A conv weight (out, in, kh, kw) is grouped over `in` at each (out, kh, kw), not over the flat memory order."""
    w = torch.zeros(1, 4, 1, 2)
    w[0, :, 0, 0] = torch.tensor([4.0, 3.0, 2.0, 1.0])   # at tap (0, 0) the first two input channels win
    w[0, :, 0, 1] = torch.tensor([1.0, 2.0, 3.0, 4.0])   # at tap (0, 1) the last two
    keep = keep_n_of_m(w, 2, 4)
    assert keep[0, :, 0, 0].tolist() == [True, True, False, False]
    assert keep[0, :, 0, 1].tolist() == [False, False, True, True]
    assert satisfies(w * keep, 2, 4) and not satisfies(w, 2, 4)


def test_layers_without_the_pattern_stay_dense():
    scores = {"conv1": torch.rand(8, 3, 3, 3), "fc": torch.rand(10, 16)}
    masks, dense = n_of_m_masks(scores, 2, 4)
    assert dense == ["conv1"] and bool(masks["conv1"].all())
    assert satisfies(scores["fc"] * masks["fc"], 2, 4)


@pytest.mark.parametrize("bad", ["4:4", "0:4", "2-4", 124])
def test_bad_patterns_name_the_key(bad):
    with pytest.raises(ConfigError, match="method.pattern"):
        parse_pattern(bad)
