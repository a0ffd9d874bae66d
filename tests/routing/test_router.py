"""Router on tiny real experts: a small CNN and a copy with channels physically removed (torch-pruning)."""
import copy

import numpy as np
import pytest
import torch
import torch_pruning as tp
from torch import nn

from routing.cache import SplitOutputs, collect_split
from routing.policies import create_policy
from routing.router import Router, expert_costs
from routing.sweep import route_outcome
from routing.timing import cascade_wallclock


class TinyNet(nn.Module):
    classifier_name = "fc"

    def __init__(self, width=16, classes=4):
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, classes)

    def forward(self, x):
        return self.fc(self.pool(self.relu2(self.conv2(self.relu1(self.conv1(x))))).flatten(1))


class Counting(nn.Module):
    """Counts every sample forwarded through the wrapped expert."""

    classifier_name = "inner.fc"

    def __init__(self, inner):
        super().__init__()
        self.inner, self.samples, self.calls = inner, 0, 0

    def forward(self, x):
        self.samples += x.shape[0]
        self.calls += 1
        return self.inner(x)


def l1_pruned(model, keep=0.5):
    """A physically smaller copy: torch-pruning removes the lowest-L1 channels of conv1 (and conv2's inputs)."""
    pruned = copy.deepcopy(model)
    ex = torch.randn(1, 1, 8, 8)
    pruner = tp.pruner.MagnitudePruner(pruned, ex, importance=tp.importance.MagnitudeImportance(p=1),
                                       pruning_ratio=1 - keep, ignored_layers=[pruned.fc, pruned.conv2])
    pruner.step()
    return pruned


def loader(n, seed, bs=32):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 8, 8, generator=g)
    y = torch.randint(0, 4, (n,), generator=g)
    return [(x[i:i + bs], y[i:i + bs]) for i in range(0, n, bs)]


@pytest.fixture(scope="module")
def experts():
    torch.manual_seed(0)
    full = TinyNet().eval()
    return full, l1_pruned(full).eval()


def test_pruned_expert_is_cheaper(experts):
    full, pruned = experts
    c_full, c_pruned = expert_costs(full, pruned, torch.zeros(1, 1, 8, 8))
    assert pruned.conv1.out_channels == 8
    # conv1: 64·16·9 → 64·8·9, conv2: 64·16·16·9 → 64·16·8·9, fc unchanged (16·4)
    assert c_full - c_pruned == pytest.approx(64 * 8 * 9 + 64 * 16 * 8 * 9, rel=0.05)


@pytest.mark.parametrize("n_points", [50, 200])
def test_each_expert_runs_once_per_split(experts, n_points):
    full, pruned = experts
    overhead = Counting(copy.deepcopy(full))
    expert_costs(overhead, overhead, torch.zeros(1, 1, 8, 8))  # MAC counting forwards a batch-1 input
    per_cost = overhead.samples // 2
    f, p = Counting(full), Counting(pruned)
    router = Router(policy="confidence", n_points=n_points, compare=["random", "margin", "entropy", "l1", "oracle",
                                                                     "static_full", "static_pruned"])
    metrics, curve, _ = router.route(f, p, loader(96, 1), loader(160, 2), torch.zeros(1, 1, 8, 8), "cpu")
    assert f.samples == p.samples == 96 + 160 + per_cost
    assert len(curve[curve.policy == "confidence"]) >= min(n_points, 96) // 2


def test_analyse_consistent_with_direct_routing(experts):
    full, pruned = experts
    router = Router(policy="confidence", n_points=64, compare=["random"])
    val = collect_split(pruned, full, loader(200, 3), "cpu")
    test = collect_split(pruned, full, loader(300, 4), "cpu")
    metrics, curve, summary = router.analyse(val, test, c_full=100.0, c_pruned=40.0)
    # recompute the chosen point's test accuracy by routing each input by hand
    conf = torch.softmax(test.pruned_logits, 1).max(1).values.numpy()
    esc = conf < metrics["routing_tau"]
    routed = np.where(esc, test.full_correct.numpy(), test.pruned_correct.numpy())
    assert metrics["routing_acc"] == pytest.approx(100 * routed.mean())
    assert metrics["routing_escalation_rate"] == pytest.approx(esc.mean())
    assert metrics["routing_cost_cascade"] == pytest.approx(0.4 + esc.mean())
    assert metrics["routing_cost_mixture"] == pytest.approx(0.4 * (1 - esc.mean()) + esc.mean())
    # per-image counts (routed worse / same / better than full) agree with the hand-routed images
    d = routed.astype(int) - test.full_correct.numpy().astype(int)
    assert metrics["routing_delta_counts"] == [int((d == -1).sum()), int((d == 0).sum()), int((d == 1).sum())]
    assert metrics["routing_escalated"] == int(esc.sum()) and metrics["routing_test_n"] == 300
    # the chosen τ satisfies the validation rule: no cheaper point reaches full val acc − 0.1
    main = curve[curve.policy == "confidence"].reset_index(drop=True)
    ok = main.acc_val >= metrics["routing_full_acc_val"] - 0.1 - 1e-9
    if ok.any():
        assert metrics["routing_escalation_rate_val"] == main.escalation_val[ok].min()
    rows = summary.set_index("method")
    assert rows.loc["static full", "acc"] == pytest.approx(100 * test.full_correct.float().mean().item())
    assert rows.loc["static pruned", "cost_cascade"] == pytest.approx(0.4)


def test_oracle_is_an_upper_bound(experts):
    full, pruned = experts
    val = collect_split(pruned, full, loader(200, 5), "cpu")
    test = collect_split(pruned, full, loader(200, 6), "cpu")
    m_or, curve, _ = Router(policy="oracle", compare=["confidence"]).analyse(val, test, 1.0, 0.5)
    both = (test.pruned_correct | test.full_correct).double().mean().item() * 100
    oracle = curve[curve.policy == "oracle"]
    assert oracle.acc_test.max() == pytest.approx(both)
    conf = curve[curve.policy == "confidence"]
    for _, row in conf.iterrows():  # at any escalation rate the oracle is at least as accurate
        best = oracle[oracle.escalation_test <= row.escalation_test + 1e-12].acc_test.max()
        if row.escalation_test >= 1 - test.pruned_correct.float().mean().item():
            assert best >= row.acc_test - 1e-9


def test_learned_router_finds_a_predictable_error():
    # synthetic: the pruned expert is wrong exactly on class 3 although its softmax is confident
    g = torch.Generator().manual_seed(0)
    n = 600
    y = torch.randint(0, 4, (n,), generator=g)
    logits = torch.nn.functional.one_hot(y, 4).float() * 4 + 0.1 * torch.randn(n, 4, generator=g)
    logits[y == 3] = torch.nn.functional.one_hot(torch.zeros((y == 3).sum(), dtype=torch.long), 4).float() * 4
    out = SplitOutputs(y, logits, logits, None)
    pol = create_policy("learned", epochs=200)
    sel = pol.fit(out, seed=0)
    assert len(sel) == n // 2
    s = pol.score(out).numpy()
    wrong = ~out.pruned_correct.numpy()
    assert s[wrong].max() < s[~wrong].min()  # perfectly separated → τ between them escalates exactly the errors


def test_signals_match_hand_formulas():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    p = torch.softmax(logits, 1)
    out = SplitOutputs(torch.tensor([0, 1]), logits, logits, torch.tensor([[1.0, -3.0], [0.5, 0.5]]))
    assert torch.allclose(create_policy("confidence").score(out), p.max(1).values)
    assert torch.allclose(create_policy("margin").score(out), torch.stack([p[0, 0] - p[0, 1], torch.tensor(0.0)]))
    ent = -(p * p.log()).sum(1)
    assert torch.allclose(create_policy("entropy").score(out), -ent)
    assert torch.allclose(create_policy("l1").score(out), torch.tensor([2.0, 0.5]))
    assert torch.equal(create_policy("oracle").score(out), torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="routing.policy"):
        create_policy("nope")


def test_batched_cascade_escalates_what_the_gate_says(experts):
    full, pruned = experts
    batches = loader(128, 7, bs=64)
    tau = 0.3

    def gate(out):
        return torch.softmax(out.pruned_logits, 1).max(1).values < tau

    t = cascade_wallclock(pruned, Counting(full), batches, gate, repeats=1, warmup=0)
    x = torch.cat([b[0] for b in batches])
    with torch.no_grad():
        expected = (torch.softmax(pruned(x), 1).max(1).values < tau).float().mean().item()
    assert t["wallclock_escalated"] == pytest.approx(expected)
    assert t["wallclock_full_ms"] > 0 and t["wallclock_ratio"] == pytest.approx(
        t["wallclock_cascade_ms"] / t["wallclock_full_ms"])
