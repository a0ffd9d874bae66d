"""The ``learned`` router: a tiny MLP trained to predict that the pruned expert is wrong."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from experiments.errors import ConfigError

from .cache import SplitOutputs


def router_inputs(out: SplitOutputs, use_features: bool) -> torch.Tensor:
    """Softmax probabilities, the same sorted (class-agnostic shape of the distribution), and
    optionally the penultimate features."""
    p = F.softmax(out.pruned_logits.float(), dim=1)
    parts = [p, p.sort(dim=1, descending=True).values]
    if use_features:
        if out.pruned_features is None:
            raise ConfigError("routing.use_features=true but the pruned expert's features were not captured")
        parts.append(out.pruned_features.float())
    return torch.cat(parts, dim=1)


class LearnedRouter:
    def __init__(self, hidden: int = 32, epochs: int = 300, lr: float = 1e-2, weight_decay: float = 1e-3,
                 use_features: bool = False):
        self.hidden, self.epochs, self.lr, self.wd, self.use_features = hidden, epochs, lr, weight_decay, use_features
        self.net: nn.Module | None = None
        self.mean = self.std = None

    def fit(self, out: SplitOutputs, seed: int = 0) -> "LearnedRouter":
        """Full-batch Adam on BCE(target = pruned expert wrong), class-balanced."""
        x = router_inputs(out, self.use_features)
        y = (~out.pruned_correct).float()
        self.mean, self.std = x.mean(0), x.std(0).clamp_min(1e-6)
        x = (x - self.mean) / self.std
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.net = nn.Sequential(nn.Linear(x.shape[1], self.hidden), nn.ReLU(), nn.Linear(self.hidden, 1))
        pos = y.mean().clamp(1e-3, 1 - 1e-3)
        weight = torch.where(y > 0, 0.5 / pos, 0.5 / (1 - pos))
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr, weight_decay=self.wd)
        with torch.enable_grad():
            for _ in range(self.epochs):
                opt.zero_grad()
                loss = F.binary_cross_entropy_with_logits(self.net(x).squeeze(1), y, weight=weight)
                loss.backward()
                opt.step()
        return self

    @torch.no_grad()
    def predict_error(self, out: SplitOutputs) -> torch.Tensor:
        if self.net is None:
            raise RuntimeError("LearnedRouter.predict_error called before fit")
        x = (router_inputs(out, self.use_features) - self.mean) / self.std
        return torch.sigmoid(self.net(x).squeeze(1))
