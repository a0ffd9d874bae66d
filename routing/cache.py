"""Cached expert outputs of one split: each expert runs once per split, every τ point reuses them."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class SplitOutputs:
    """Labels, both experts' logits and the pruned expert's penultimate features (CPU tensors)."""

    labels: torch.Tensor
    pruned_logits: torch.Tensor
    full_logits: torch.Tensor | None
    pruned_features: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def pruned_correct(self) -> torch.Tensor:
        return self.pruned_logits.argmax(1) == self.labels

    @property
    def full_correct(self) -> torch.Tensor:
        return self.full_logits.argmax(1) == self.labels

    def subset(self, index: torch.Tensor) -> "SplitOutputs":
        pick = (lambda t: None if t is None else t[index])
        return SplitOutputs(self.labels[index], self.pruned_logits[index], pick(self.full_logits),
                            pick(self.pruned_features))


def classifier_module(model: nn.Module) -> nn.Module:
    """The final classifier (``model.classifier_name``, else the last ``nn.Linear``)."""
    name = getattr(model, "classifier_name", None)
    if name:
        return model.get_submodule(name)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no classifier_name and no nn.Linear to hook features from")
    return linears[-1]


class FeatureTap:
    """Forward pre-hook on the classifier that keeps its (flattened) input: the penultimate features."""

    def __init__(self, model: nn.Module):
        self.value: torch.Tensor | None = None
        self.handle = classifier_module(model).register_forward_pre_hook(self._hook)

    def _hook(self, module, args):
        self.value = args[0].detach().flatten(1)

    def remove(self) -> None:
        self.handle.remove()


@torch.no_grad()
def run_expert(model: nn.Module, loader, device, features: bool = False):
    """(logits, labels, features|None) of ``model`` on every batch of ``loader`` (one pass)."""
    was_training = model.training
    model.eval()
    tap = FeatureTap(model) if features else None
    logits, labels, feats = [], [], []
    try:
        for x, y in loader:
            out = model(x.to(device))
            logits.append(out.float().cpu())
            labels.append(y.cpu())
            if tap is not None:
                feats.append(tap.value.float().cpu())
    finally:
        if tap is not None:
            tap.remove()
        model.train(was_training)
    return torch.cat(logits), torch.cat(labels), (torch.cat(feats) if feats else None)


def collect_split(pruned: nn.Module, full: nn.Module, loader, device) -> SplitOutputs:
    """Run the pruned expert (with features) and the full expert once over ``loader``."""
    p_logits, labels, feats = run_expert(pruned, loader, device, features=True)
    f_logits, labels_f, _ = run_expert(full, loader, device)
    if not torch.equal(labels, labels_f):
        raise RuntimeError("the split loader is not deterministic (labels differ between expert passes)")
    return SplitOutputs(labels, p_logits, f_logits, feats)
