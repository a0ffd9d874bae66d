"""GPU fast-path switches that can be checked on a CPU: ``trainer.compile`` wraps the training model."""
from __future__ import annotations

import torch
from torch import nn

from experiments.data.bundle import TensorLoader
from experiments.train import Trainer, create_schedule


class _Wrapped(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self._orig_mod = inner

    def forward(self, x):
        return self._orig_mod(x)


def _fit(compile_: bool):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 255, (64, 1, 4, 4), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 3, (64,), generator=g)
    loader = TensorLoader(x, y, 16, torch.tensor([0.5]), torch.tensor([0.25]), shuffle=True, drop_last=True, seed=1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
    trainer = Trainer(model, loader, {}, create_schedule(2, 0.1), {"name": "sgd", "lr": 0.1}, progress=False,
                      compile=compile_)
    trainer.fit()
    return trainer


def test_compile_wraps_the_training_forward_only(monkeypatch):
    compiled = []

    def fake_compile(module):
        compiled.append(module)
        return _Wrapped(module)             # like torch.compile: a new module computing the same function
    monkeypatch.setattr(torch, "compile", fake_compile)
    plain, fast = _fit(False), _fit(True)
    assert compiled == [fast.model] and plain.forward_model is plain.model
    assert fast.forward_model is not fast.model
    for a, b in zip(plain.model.parameters(), fast.model.parameters()):
        torch.testing.assert_close(a, b)
    assert "_orig_mod" not in "".join(fast.state_dict()["model"])   # checkpoints hold the plain module's keys
