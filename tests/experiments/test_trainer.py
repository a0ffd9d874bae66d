import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from experiments.data.bundle import TensorLoader
from experiments.train import Callback, ExtraOptimizer, NonFiniteLoss, Trainer, create_schedule


def _data(n=96):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 255, (n, 1, 4, 4), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    return x, y


def _loader(seed=5):
    x, y = _data()
    return TensorLoader(x, y, 16, torch.tensor([0.5]), torch.tensor([0.25]), shuffle=True, drop_last=True, seed=seed)


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))


OPT = {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-3}


def _manual(model, epochs, extra_loss=None):
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    loader = _loader()
    sched = create_schedule(epochs=epochs, lr=0.1, name="cosine")
    for e in range(epochs):
        for g in opt.param_groups:
            g["lr"] = sched.lr_at(e)
        for x, y in loader:
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            if extra_loss is not None:
                loss = loss + extra_loss(model)
            loss.backward()
            opt.step()
    return model


def test_trainer_equals_hand_written_loop():
    ref = _manual(_model(), 3)
    model = _model()
    Trainer(model, _loader(), {}, create_schedule(3, 0.1), OPT, progress=False).fit()
    for a, b in zip(ref.parameters(), model.parameters()):
        torch.testing.assert_close(a, b)


class L2Hook(Callback):
    def __init__(self):
        self.calls = []

    def extra_loss(self, trainer):
        return 0.01 * sum((p ** 2).sum() for p in trainer.model.parameters())

    def on_after_backward(self, trainer):
        self.calls.append("backward")

    def on_after_step(self, trainer):
        self.calls.append("step")

    def on_epoch_end(self, trainer, epoch, metrics):
        return {"density": 1.0}


def test_extra_loss_and_hook_order():
    ref = _manual(_model(), 2, extra_loss=lambda m: 0.01 * sum((p ** 2).sum() for p in m.parameters()))
    model, hook = _model(), L2Hook()
    result = Trainer(model, _loader(), {}, create_schedule(2, 0.1), OPT, callbacks=[hook], progress=False).fit()
    for a, b in zip(ref.parameters(), model.parameters()):
        torch.testing.assert_close(a, b)
    assert hook.calls[:4] == ["backward", "step", "backward", "step"] and len(hook.calls) == 2 * 2 * 6
    assert result.history[-1]["density"] == 1.0


class GateOptimizer(Callback):
    """An extra parameter trained by its own optimizer (as Hyperflows' flow parameters are)."""

    def __init__(self, model):
        self.gate = nn.Parameter(torch.ones(3))
        model.register_parameter("gate", self.gate)

    def optimizers(self, trainer):
        return [ExtraOptimizer(torch.optim.Adam([self.gate], lr=0.05), None, "gate")]

    def extra_loss(self, trainer):
        return self.gate.sum()


def test_extra_optimizer_params_leave_main_optimizer():
    model = _model()
    cb = GateOptimizer(model)
    trainer = Trainer(model, _loader(), {}, create_schedule(1, 0.1), OPT, callbacks=[cb], progress=False)
    main_ids = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert id(cb.gate) not in main_ids and len(main_ids) == 4
    trainer.fit()
    # Adam moves each element by ~lr per step against a constant gradient of 1: 6 steps
    torch.testing.assert_close(cb.gate.detach(), torch.full((3,), 1 - 6 * 0.05), atol=1e-3, rtol=0)


def test_nan_loss_stops_with_clear_error():
    model = _model()
    with torch.no_grad():
        model[1].weight.fill_(float("nan"))
    with pytest.raises(NonFiniteLoss, match=r"epoch 1 step 1; lower trainer.finetune.optimizer.lr \(now 0.1\)"):
        Trainer(model, _loader(), {}, create_schedule(1, 0.1), OPT, progress=False,
                lr_key="trainer.finetune.optimizer.lr").fit()


def test_best_and_final_accuracy_tracking():
    x, y = _data()
    ev = TensorLoader(x, y, 32, torch.tensor([0.5]), torch.tensor([0.25]))
    model = _model()
    res = Trainer(model, _loader(), {"val": ev, "test": ev}, create_schedule(3, 0.1), OPT, progress=False).fit()
    accs = [h["test_acc"] for h in res.history]
    assert res.best_test_acc == max(accs) and res.final_test_acc == accs[-1]
    assert res.test_at_best_val == accs[[h["val_acc"] for h in res.history].index(res.best_val_acc)]


def test_no_progress_bar_frames_off_a_terminal_and_a_heartbeat_for_long_epochs(capsys, monkeypatch, caplog):
    import logging

    from experiments.train import trainer as trainer_mod

    monkeypatch.setattr(trainer_mod, "progress_on_terminal", lambda: False)
    Trainer(_model(), _loader(), {}, create_schedule(1, 0.1), OPT, progress=True).fit()
    captured = capsys.readouterr()
    assert "\r" not in captured.err + captured.out
    beat = trainer_mod.Heartbeat("finetune 1/3", total=100, every=0.0)
    with caplog.at_level(logging.INFO, logger=trainer_mod.__name__):
        beat(40)
    assert "[finetune 1/3] 40 % of epoch (40/100 steps)" in caplog.text
