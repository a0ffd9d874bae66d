"""Unstructured baselines (GMP, RigL, GraNet, SNIP, SynFlow): each rule against a hand-worked or brute-force
reference on toy tensors, then every method end-to-end through the real pipeline on tiny settings."""
from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY, compose_cfg
from torch import nn

from experiments.context import StageContext
from experiments.pipeline import run
from experiments.sparsity.drop_grow import drop_and_grow, global_magnitude_prune
from experiments.sparsity.masks import (
    BinaryMask,
    attach_masks,
    current_masks,
    original_weights,
    set_masks,
)
from experiments.sparsity.schedules import (
    apportion,
    erk_densities,
    exponential_densities,
    gmp_sparsity,
    granet_regen_rate,
    rigl_drop_fraction,
)
from experiments.train import Callback, Trainer, create_schedule
from hyperflows.gmp import GradualMagnitude
from hyperflows.granet import GraNet
from hyperflows.grasp import class_balanced_sample, grasp_scores
from hyperflows.rigl import RigL, layer_counts
from hyperflows.snip import snip_scores
from hyperflows.synflow import linearized_copy, synflow_masks, synflow_scores


# -- helpers ----------------------------------------------------------------------------------------------
def masked(model: nn.Module, masks: dict[str, torch.Tensor] | None = None) -> nn.Module:
    attach_masks(model, lambda name, layer: BinaryMask(layer.weight))
    if masks:
        set_masks(model, masks)
    return model


class LossTrainer(Trainer):
    """The real training loop (hook order, optimizer, step clock) over ``steps`` dummy batches, with ``loss_fn``
    of the whole model in place of cross-entropy: the loss the hand-worked references are built on."""

    def __init__(self, model, loss_fn, steps: int, optimizer: dict, callbacks=(), step_offset: int = 0):
        batch = (torch.zeros(1), torch.zeros(1, dtype=torch.long))
        super().__init__(model, [batch] * steps, {}, create_schedule(1, optimizer["lr"], name="constant"),
                         optimizer, callbacks=callbacks, progress=False, amp=False, step_offset=step_offset)
        self.loss_fn = loss_fn

    def compute_loss(self, x, y):
        return self.loss_fn(self.model), torch.zeros(len(y), 2)


class StopFit(Exception):
    """Raised by a hook to end a fit after the steps a test looks at."""


class Hooks(Callback):
    """Runs ``fn(trainer)`` at the named hook points of the real trainer (placed before or after the method's
    own callback, it sees the state before or after the method's update)."""

    def __init__(self, **fns):
        self.fns = fns

    def on_after_backward(self, trainer):
        if "on_after_backward" in self.fns:
            self.fns["on_after_backward"](trainer)

    def on_after_step(self, trainer):
        if "on_after_step" in self.fns:
            self.fns["on_after_step"](trainer)


def make_trainer(method, model, loss_fn, steps: int, before=None, after=None, stop_after: int | None = None,
                 step_offset=0, **optimizer) -> LossTrainer:
    """A real trainer with ``method``'s callback between two ``Hooks`` (run it with :func:`run_fit`);
    ``stop_after``: end after that 0-based step (its optimizer step and re-mask done); ``optimizer``: the weight
    optimizer's config."""
    after = dict(after or {})
    if stop_after is not None:
        inner = after.get("on_after_step")

        def stop(trainer):
            if inner:
                inner(trainer)
            if trainer.global_step == stop_after:
                raise StopFit
        after["on_after_step"] = stop
    cfg = {"name": "sgd", "lr": 0.1, "momentum": 0.0, "weight_decay": 0.0, **optimizer}
    trainer = LossTrainer(model, loss_fn, steps, cfg, [Hooks(**(before or {})), method.callbacks(SimpleNamespace(model=model))[0],
                                                       Hooks(**after)], step_offset=step_offset)
    return trainer


def run_fit(trainer: LossTrainer) -> None:
    try:
        trainer.fit()
    except StopFit:
        pass


# -- schedules ----------------------------------------------------------------------------------------------
def test_gmp_cubic_schedule_at_start_mid_end():
    s_i, s_f, t0, n_dt = 0.2, 0.9, 100, 400
    assert gmp_sparsity(t0, s_f, s_i, t0, n_dt) == pytest.approx(s_i)
    assert gmp_sparsity(t0 + n_dt / 2, s_f, s_i, t0, n_dt) == pytest.approx(0.9 + (0.2 - 0.9) * 0.5 ** 3)  # 0.8125
    assert gmp_sparsity(t0 + n_dt, s_f, s_i, t0, n_dt) == pytest.approx(s_f)
    assert gmp_sparsity(0, s_f, s_i, t0, n_dt) == s_i and gmp_sparsity(10 ** 6, s_f, s_i, t0, n_dt) == s_f
    values = [gmp_sparsity(t, s_f, s_i, t0, n_dt) for t in range(t0, t0 + n_dt + 1)]
    assert all(b >= a for a, b in zip(values, values[1:]))


def test_gmp_prune_steps_end_exactly_at_t_end():
    m = GradualMagnitude("gmp", 0.9, epochs=1, prune_every=4, prune_end_fraction=0.75)
    m.clock.total = 30                                       # t_end = round(22.5) = 22 (banker's rounding)
    assert m.schedule.bounds() == (0, 22)
    assert [t for t in range(30) if m.pruning.is_step(t)] == [0, 4, 8, 12, 16, 20, 22]
    assert m.schedule.sparsity_at(22) == pytest.approx(0.9) and m.schedule.sparsity_at(0) == 0.0


def test_rigl_drop_fraction_and_granet_regen_rate():
    assert rigl_drop_fraction(0, 0.3, 1000) == pytest.approx(0.3)
    assert rigl_drop_fraction(500, 0.3, 1000) == pytest.approx(0.15)
    assert rigl_drop_fraction(250, 0.3, 1000) == pytest.approx(0.15 * (1 + math.sqrt(0.5)))
    assert rigl_drop_fraction(1000, 0.3, 1000) == 0.0
    assert granet_regen_rate(0, 1000, 0.5) == pytest.approx(0.5)
    assert granet_regen_rate(500, 1000, 0.5) == pytest.approx((0.5 + 0.005) / 2)
    assert granet_regen_rate(1000, 1000, 0.5) == pytest.approx(0.005)
    # the same curve as torch's CosineAnnealingLR (GraNet's CosineDecay)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.5)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 40, eta_min=0.005)
    for t in range(40):
        assert granet_regen_rate(t, 40, 0.5) == pytest.approx(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()


def test_exponential_density_schedule():
    ds = exponential_densities(0.01, 4)
    assert ds == pytest.approx([0.01 ** 0.25, 0.01 ** 0.5, 0.01 ** 0.75, 0.01]) and ds[-1] == 0.01


# -- ERK --------------------------------------------------------------------------------------------------
SHAPES = {"conv1": (8, 3, 3, 3), "conv2": (32, 8, 3, 3), "fc": (10, 512)}


def erk_bisection(shapes, density):
    """Independent reference: d_l = min(1, ε·(Σdims/Πdims)), ε found by bisection so Σ d_l n_l = density·N."""
    raw = {n: sum(s) / math.prod(s) for n, s in shapes.items()}
    size = {n: math.prod(s) for n, s in shapes.items()}
    target = density * sum(size.values())
    lo, hi = 0.0, 1e6
    for _ in range(200):
        eps = (lo + hi) / 2
        if sum(min(1.0, eps * raw[n]) * size[n] for n in shapes) < target:
            lo = eps
        else:
            hi = eps
    return {n: min(1.0, hi * raw[n]) for n in shapes}


@pytest.mark.parametrize("density", [0.05, 0.3, 0.8])
def test_erk_matches_brute_force_total_exact_and_ordered(density):
    dens = erk_densities(SHAPES, density)
    size = {n: math.prod(s) for n, s in SHAPES.items()}
    assert sum(dens[n] * size[n] for n in SHAPES) == pytest.approx(density * sum(size.values()), rel=1e-12)
    assert all(0.0 < d <= 1.0 for d in dens.values())
    assert dens == pytest.approx(erk_bisection(SHAPES, density), rel=1e-9)
    # Σdims/Πdims: fc 522/5120 > conv1 17/216 > conv2 52/2304, and the densities follow that order
    raw = {n: sum(s) / math.prod(s) for n, s in SHAPES.items()}
    order = sorted(SHAPES, key=raw.get)
    assert order == ["conv2", "conv1", "fc"] and [dens[n] for n in order] == sorted(dens.values())
    if density == 0.8:  # fc, then conv1, would exceed 1: both dense, ε re-solved over conv2
        assert dens["fc"] == dens["conv1"] == 1.0 and dens["conv2"] < 1.0


def test_erk_hand_computed_without_dense_layers():
    shapes = {"a": (4, 4), "b": (8, 2)}                  # raw a = 8/16, b = 10/16; N = 32
    eps = 0.25 * 32 / (0.5 * 16 + 0.625 * 16)           # 8 / 18
    assert erk_densities(shapes, 0.25) == pytest.approx({"a": 0.5 * eps, "b": 0.625 * eps})


def test_apportion_and_layer_counts_hit_exact_total():
    counts = layer_counts(SHAPES, 0.1)
    size = {n: math.prod(s) for n, s in SHAPES.items()}
    assert sum(counts.values()) == round(0.1 * sum(size.values()))
    dens = erk_densities(SHAPES, 0.1)
    assert all(abs(counts[n] - dens[n] * size[n]) < 1 for n in SHAPES)
    assert apportion({"a": 0.5, "b": 0.5}, {"a": 3, "b": 3}, 3) in ({"a": 2, "b": 1}, {"a": 1, "b": 2})


# -- RigL drop / grow on a toy layer ------------------------------------------------------------------------
W0 = torch.tensor([[0.5, -0.1, 0.0, 0.3], [0.2, 0.0, -0.05, 0.7]])
G0 = torch.tensor([[0.1, -0.3, -0.9, 0.2], [0.4, 0.8, 0.5, -0.6]])   # the dense ∂L/∂ŵ we make the loss have


def toy_loss(model):
    """loss = Σ ŵ ⊙ G0 through the real forward: one-hot inputs make out[b, i] = ŵ[i, b]."""
    out = model(torch.eye(4))
    return (out * G0.t()).sum()


def test_drop_and_grow_rule_by_hand():
    mask = W0 != 0
    after_drop, new = drop_and_grow(mask, W0, G0, 2)
    dropped = mask & ~after_drop
    assert dropped.nonzero().tolist() == [[0, 1], [1, 2]]           # |w| 0.1 and 0.05: the smallest active
    assert (new & ~after_drop).nonzero().tolist() == [[0, 2], [1, 1]]  # |g| 0.9, 0.8 among the inactive
    assert int(new.sum()) == int(mask.sum()) == 6


def test_rigl_update_step_taps_dense_grad_grows_at_zero_and_zeroes_momentum():
    model = masked(nn.Sequential(nn.Linear(4, 2, bias=False)))
    with torch.no_grad():
        original_weights(model)["0"].copy_(W0)
    set_masks(model, {"0": W0 != 0})
    method = RigL("rigl", 0.25, epochs=1, alpha=0.4, update_every=1, end_fraction=1.0)
    taps = []
    trainer = make_trainer(method, model, toy_loss, 1000, before={"on_after_backward": lambda t: taps.append(
        method.updater.masks["0"].tap)}, stop_after=1, step_offset=1, lr=0.1, momentum=0.9, weight_decay=5e-4)
    opt = trainer.optimizer
    opt.state[original_weights(model)["0"]]["momentum_buffer"] = (W0 != 0).float() * 0.7
    w_before = original_weights(model)["0"].detach().clone()
    run_fit(trainer)                                               # f(1) = 0.2(1 + cos(π/1000)) -> ⌊0.4·6⌋ = 2
    assert taps == [True]                                          # step 1 updates: tap on for its backward
    mask = current_masks(model)["0"]
    expected = (W0 != 0).clone()
    expected[0, 1] = expected[1, 2] = False
    expected[0, 2] = expected[1, 1] = True
    assert torch.equal(mask, expected) and int(mask.sum()) == 6
    w = original_weights(model)["0"].detach()
    buf = opt.state[original_weights(model)["0"]]["momentum_buffer"]
    assert w[0, 2] == 0 and w[1, 1] == 0 and buf[0, 2] == 0 and buf[1, 1] == 0   # grown: zero weight, zero momentum
    assert torch.all(w[~mask] == 0) and torch.all(buf[~mask] == 0)               # pruned: zero weight, zero momentum
    kept = mask & (W0 != 0)                                        # kept weights took the ordinary SGD step
    step = 0.9 * 0.7 + G0 + 5e-4 * w_before                        # momentum·buf + ∂L/∂w + wd·w
    assert torch.allclose(w[kept], (w_before - 0.1 * step)[kept])
    assert (method.drop_grow.last_dropped, method.drop_grow.last_grown_new) == (2, 2)
    assert method.updater.masks["0"].tap                                   # update_every=1: step 2 updates too


def test_rigl_tap_only_on_update_steps_and_state_roundtrip():
    model = masked(nn.Sequential(nn.Linear(4, 2, bias=False)))
    method = RigL("rigl", 0.5, epochs=1, update_every=3, end_fraction=1.0)
    taps = []
    record_tap = {"on_after_backward": lambda t: taps.append(method.updater.masks["0"].tap)}
    run_fit(make_trainer(method, model, toy_loss, 12, before=record_tap, stop_after=7))   # 8 steps of 12
    assert taps == [False, False, False, True, False, False, True, False]
    state = copy.deepcopy(method.updater.state_dict())
    fresh = RigL("rigl", 0.5, epochs=1, update_every=3, end_fraction=1.0)
    fresh.callbacks(SimpleNamespace(model=model))
    fresh.updater.load_state_dict(state)                                    # resumed before step 8 (not an update)
    assert (fresh.clock.done, fresh.clock.total, fresh.updater.updates) == (8, 12, 2)
    assert fresh.drop_grow.grown_total == method.drop_grow.grown_total and not fresh.updater.masks["0"].tap
    state["clock"]["done"] = 9
    fresh.updater.load_state_dict(state)                                    # resumed before step 9 (an update)
    assert fresh.updater.masks["0"].tap


def test_rigl_erk_initial_masks_magnitude_and_random():
    torch.manual_seed(0)
    model = masked(nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8 * 4 * 4, 10)))
    ctx = SimpleNamespace(model=model)
    counts = layer_counts({"0": (8, 3, 3, 3), "2": (10, 128)}, 0.2)
    w = original_weights(model)
    for init in ("magnitude", "random"):
        masks = RigL("rigl", 0.8, epochs=1, init=init).initial_masks(ctx)
        assert {n: int(m.sum()) for n, m in masks.items()} == counts
    masks = RigL("rigl", 0.8, epochs=1, init="magnitude").initial_masks(ctx)
    for n, m in masks.items():   # every kept |w| ≥ every dropped |w| within a layer
        assert w[n].abs()[m].min() >= w[n].abs()[~m].max()


# -- GMP / GraNet -------------------------------------------------------------------------------------------
def two_layer_model(seed=0):
    torch.manual_seed(seed)
    return masked(nn.Sequential(nn.Linear(6, 5, bias=False), nn.ReLU(), nn.Linear(5, 4, bias=False)))


def data_loss(model):
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, 6, generator=g), torch.randint(0, 4, (8,), generator=g)
    return F.cross_entropy(model(x), y)


def test_global_magnitude_prune_never_revives():
    w = {"a": torch.tensor([0.0, 0.0, 3.0, 1.0]), "b": torch.tensor([2.0, 0.5])}
    m = {"a": torch.tensor([True, False, True, True]), "b": torch.tensor([True, True])}
    out = global_magnitude_prune(w, m, 3 / 6)
    assert out["a"].tolist() == [False, False, True, True] and out["b"].tolist() == [True, False]
    out = global_magnitude_prune(w, m, 5 / 6)     # asks for more than the 5 active: keeps exactly the active
    assert out["a"].tolist() == [True, False, True, True] and int(out["b"].sum()) == 2


def test_gmp_steps_follow_the_cubic_schedule_globally():
    model = two_layer_model()
    method = GradualMagnitude("gmp", 0.8, epochs=1, prune_every=2, prune_end_fraction=0.5)
    N = 6 * 5 + 5 * 4
    before, checked = {}, []

    def snapshot(trainer):   # before the method's update of this step
        before["w"] = {n: w.detach().clone() for n, w in original_weights(model).items()}
        before["m"] = current_masks(model)

    def check(trainer):      # after the step's optimizer step and re-mask
        t = trainer.global_step
        if method.schedule.is_step(t):
            # brute force: rank the active |w| of both layers together, keep round((1 - s(t))·N)
            k = round((1 - gmp_sparsity(t, 0.8, 0.0, 0, 10)) * N)
            w, m = before["w"], before["m"]
            flat = torch.cat([torch.where(m[n], w[n].abs(), -1.0).flatten() for n in w])
            thresh = flat.sort(descending=True).values[k - 1]
            now = current_masks(model)
            assert sum(int(x.sum()) for x in now.values()) == k
            assert all(torch.equal(now[n], m[n] & (w[n].abs() >= thresh)) for n in now)
            checked.append(t)
    run_fit(make_trainer(method, model, data_loss, 20, before={"on_after_backward": snapshot},
                         after={"on_after_step": check}, lr=0.05, momentum=0.9))
    assert checked == [0, 2, 4, 6, 8, 10]
    assert method.pruning.prunes == 6 and method.pruning.scheduled_sparsity == pytest.approx(0.8)
    assert sum(int(m.sum()) for m in current_masks(model).values()) == round(0.2 * N)


def test_granet_regeneration_counts_and_grown_weights_start_at_zero():
    model = two_layer_model(3)
    method = GraNet("granet", 0.7, epochs=1, prune_every=2, prune_end_fraction=0.5, regen_rate=0.5)
    N = 50
    ref, updates, grown_steps = {}, [], []

    def reference(trainer):   # after this step's backward (dense grads tapped), before the method's update
        t = trainer.global_step
        assert method.updater.masks["0"].tap == method.updater.is_update_step(t)
        if method.updater.is_update_step(t):
            # the schedule's prune alone, done on a copy: the reference for per-layer counts after it
            w_now = {n: w.detach().clone() for n, w in original_weights(model).items()}
            ref["post"] = global_magnitude_prune(w_now, current_masks(model), 1 - method.schedule.sparsity_at(t))
            ref["dense"] = {n: m.dense_grad.clone() for n, m in method.updater.masks.items()}

    def check(trainer):       # after the method's update, before the optimizer step
        t = trainer.global_step
        if not method.updater.is_update_step(t):
            return
        updates.append(t)
        post, dense, new = ref["post"], ref["dense"], current_masks(model)
        r = granet_regen_rate(t, 20, 0.5)
        assert method.regeneration.last_rate == pytest.approx(r)
        assert method.regeneration.last_dropped == sum(math.ceil(r * int(post[n].sum())) for n in post)
        for n in new:
            assert int(new[n].sum()) == int(post[n].sum())       # regeneration keeps each layer's count
            grown = new[n] & ~post[n]
            w = original_weights(model)[n]
            assert torch.all(w.detach()[grown] == 0) and torch.all(w.grad[grown] == 0)
            # the grown ones have the largest |dense grad| among what was inactive after the drop
            if grown.any():
                grown_steps.append(t)
                pool = ~new[n] & ~post[n]
                if pool.any():
                    assert dense[n].abs()[grown].min() >= dense[n].abs()[pool].max()
    run_fit(make_trainer(method, model, data_loss, 20, before={"on_after_backward": reference},
                         after={"on_after_backward": check}, lr=0.05, momentum=0.9))
    assert updates == [0, 2, 4, 6, 8, 10] and grown_steps and method.regeneration.regrown_total > 0
    assert sum(int(m.sum()) for m in current_masks(model).values()) == round(0.3 * N)


# -- SNIP / SynFlow scores -----------------------------------------------------------------------------------
def test_snip_scores_equal_autograd_w_times_grad():
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    model = masked(copy.deepcopy(plain))
    g = torch.Generator().manual_seed(2)
    batches = [(torch.randn(7, 6, generator=g), torch.randint(0, 3, (7,), generator=g)) for _ in range(2)]
    scores = snip_scores(model, batches)
    for x, y in batches:
        F.cross_entropy(plain(x), y).backward()                     # accumulates Σ_b ∂L_b/∂w
    for name, idx in (("0", 0), ("2", 2)):
        ref = (plain[idx].weight * plain[idx].weight.grad).abs()
        assert torch.allclose(scores[name], ref, atol=1e-7)
    # at a partial mask the score is |ŵ ⊙ ∂L/∂ŵ|: zero on pruned weights
    m = {"0": torch.rand(5, 6) > 0.5, "2": torch.ones(3, 5, dtype=torch.bool)}
    set_masks(model, m)
    assert torch.all(snip_scores(model, batches[:1])["0"][~m["0"]] == 0)


def test_synflow_scores_closed_form_two_layer_linear():
    torch.manual_seed(0)
    net = masked(nn.Sequential(nn.Linear(5, 4, bias=False), nn.Linear(4, 3, bias=False)))
    W1, W2 = (original_weights(net)[n].detach().clone() for n in ("0", "1"))
    W1[0, 0] = -W1[0, 0].abs() - 0.3                               # signs must not matter: scores use |W|
    with torch.no_grad():
        original_weights(net)["0"].copy_(W1)
    A1, A2 = W1.abs().double(), W2.abs().double()
    # R = 1ᵀ A2 A1 1: ∂R/∂A1[i,j] = (1ᵀA2)[i], ∂R/∂A2[k,i] = (A1 1)[i]
    ref1 = A1 * A2.sum(0)[:, None]
    ref2 = A2 * A1.sum(1)[None, :]
    scores = synflow_scores(linearized_copy(net), torch.zeros(1, 5))
    assert torch.allclose(scores["0"], ref1) and torch.allclose(scores["1"], ref2)
    assert torch.equal(original_weights(net)["0"].detach(), W1)     # the model itself is untouched


def test_synflow_iterative_reaches_exact_target_and_one_round_is_top_k():
    torch.manual_seed(0)
    net = masked(nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4)))
    N = 20 * 16 + 16 * 16 + 16 * 4
    before = {n: w.detach().clone() for n, w in original_weights(net).items()}
    masks = synflow_masks(net, torch.zeros(1, 20), 0.05, rounds=10)
    assert sum(int(m.sum()) for m in masks.values()) == round(0.05 * N)
    assert all(torch.equal(before[n], w.detach()) for n, w in original_weights(net).items())
    assert all(m.any() for m in masks.values())                     # no layer collapse at 95 %
    one = synflow_masks(net, torch.zeros(1, 20), 0.3, rounds=1)
    scores = synflow_scores(linearized_copy(net), torch.zeros(1, 20))
    flat = torch.cat([s.flatten() for s in scores.values()])
    thresh = flat.sort(descending=True).values[round(0.3 * N) - 1]
    assert all(torch.equal(one[n], scores[n] >= thresh) for n in scores)


def test_grasp_scores_equal_minus_theta_hessian_gradient():
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    model = masked(copy.deepcopy(plain))
    x, y = torch.randn(6, 3, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2])
    T = 2.0
    scores = grasp_scores(model, x, y, temperature=T, chunk=4)        # two chunks
    # reference: the full Hessian of L(θ) over both weight matrices (biases fixed), H @ g, −θ ⊙ Hg
    w0, w2 = plain[0].weight.detach(), plain[2].weight.detach()

    def loss(v):
        a, b = v[:12].view(4, 3), v[12:].view(3, 4)
        h = torch.tanh(x @ a.t() + plain[0].bias.detach())
        return F.cross_entropy((h @ b.t() + plain[2].bias.detach()) / T, y)
    v = torch.cat([w0.flatten(), w2.flatten()])
    H = torch.autograd.functional.hessian(loss, v)
    g = torch.autograd.functional.jacobian(loss, v)
    ref = -(v * (H @ g))
    assert torch.allclose(torch.cat([scores["0"].flatten(), scores["2"].flatten()]), ref, atol=1e-12)


def test_class_balanced_sample():
    batches = [(torch.arange(6.0)[:, None], torch.tensor([0, 0, 1, 0, 2, 1])),
               (torch.arange(6.0, 12.0)[:, None], torch.tensor([2, 2, 1, 0, 1, 2]))]
    x, y = class_balanced_sample(batches, 3, 2)
    assert y.tolist() == [0, 0, 1, 1, 2, 2] and x.flatten().tolist() == [0, 1, 2, 5, 4, 6]


# -- end to end through the pipeline ------------------------------------------------------------------------
@pytest.fixture
def fits(monkeypatch):
    """Spy on ``StageContext.fit``: (phase, recipe, epochs, FitResult) of every fit of the run."""
    calls = []
    original = StageContext.fit

    def spy(self, model, *args, **kwargs):
        result = original(self, model, *args, **kwargs)
        calls.append((kwargs.get("phase"), kwargs.get("recipe"), kwargs.get("epochs"), result))
        return result
    monkeypatch.setattr(StageContext, "fit", spy)
    return calls


E2E = {
    "gmp": (["method.prune_every=2"], "scheduled_sparsity"),
    "granet": (["method.prune_every=2"], "regen_rate"),
    "rigl": (["method.update_every=2"], "grown_total"),
    "snip": (["method.batches=2"], None),
    "synflow": (["method.rounds=20"], None),
    "grasp": (["method.samples_per_class=5"], None),
}


@pytest.mark.parametrize("method", sorted(E2E))
def test_method_end_to_end_reaches_target(method, tmp_path, fits):
    extra, key = E2E[method]
    # 512 images / batch 64 = 8 batches, capped at 6 steps per epoch: T = 12 fine-tune steps
    cfg = compose_cfg(TINY + [f"method={method}", "sparsity=\"95\"", "trainer.max_steps_per_epoch=6",
                              "trainer.batch_size=64", "trainer.pretrain.epochs=1", "trainer.finetune.epochs=2",
                              *extra], tmp_path)
    rec = run(cfg)
    m = rec["metrics"]
    assert rec["status"] == "ok"
    assert m["sparsity"] == pytest.approx(0.95, abs=0.005)
    (phase, recipe, epochs, result), = [f for f in fits if f[0] == "finetune"]
    assert epochs == 2 and len(result.history) == 2                # the shared fine-tune budget
    at_init = method in ("snip", "synflow", "grasp")
    assert recipe == ("pretrain" if at_init else "finetune")
    assert result.history[0]["lr"] == pytest.approx(0.05 if at_init else 0.01)  # that recipe's optimizer
    assert m["density_after_prune"] == pytest.approx(1.0 if method in ("gmp", "granet") else 0.05, abs=1e-3)
    if key is not None:
        assert all(key in h for h in result.history)
    if method == "gmp":
        assert result.history[-1]["scheduled_sparsity"] == pytest.approx(0.95)
    if method == "rigl":
        assert result.history[-1]["mask_updates"] == 4              # steps 2, 4, 6, 8 < T_end = 9
    if method in ("rigl", "granet"):
        grown = "grown_total" if method == "rigl" else "regen_grown_total"
        assert result.history[-1][grown] > 0                      # masks really moved


@pytest.mark.parametrize("method", ["rigl", "granet"])
def test_preempted_mid_epoch_then_resumed_equals_uninterrupted(method, tmp_path, monkeypatch):
    """Preempted after fine-tune step 4 of 12, just before an update step: the resumed run restores the step
    clock and the dense-gradient tap from the checkpoint and ends with the uninterrupted run's weights."""
    from experiments.checkpoint import load_model
    from experiments.resume import Preempted
    from experiments.train.trainer import Trainer

    over = TINY + [f"method={method}", "sparsity=\"90\"", "trainer.max_steps_per_epoch=6", "trainer.batch_size=64",
                   "trainer.epochs=2", "method.update_every=2" if method == "rigl" else "method.prune_every=2"]
    ref = run(compose_cfg(over, tmp_path / "ref"))
    stop = {"done": False}

    def should_stop(self):
        if self.phase == "finetune" and self.global_step == 4 and not stop["done"]:
            stop["done"] = True
            return True
        return False
    monkeypatch.setattr(Trainer, "_should_stop", should_stop)
    with pytest.raises(Preempted):
        run(compose_cfg(over, tmp_path / "cut"))
    rec = run(compose_cfg(over, tmp_path / "cut"))
    assert rec["attempts"] == 2 and rec["metrics"]["test_acc"] == ref["metrics"]["test_acc"]
    a, _ = load_model(ref["checkpoints"]["final"])
    b, _ = load_model(rec["checkpoints"]["final"])
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name
