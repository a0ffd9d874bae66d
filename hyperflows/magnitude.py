"""One-shot global magnitude pruning of the trained dense model, then fine-tuning with fixed masks."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from experiments.sparsity.masks import original_weights

from .masked_method import MaskedMethod

if TYPE_CHECKING:  # pragma: no cover
    from experiments.context import StageContext


class OneShotMagnitude(MaskedMethod):
    """Keep the (1 − S)·N largest |w| over all Conv2d/Linear weights (global ranking), or the N largest of every M
    (``method.pattern``); no rules."""

    one_shot = True

    def initial_masks(self, ctx: "StageContext") -> dict[str, torch.Tensor]:
        return self.keep({n: w.detach().abs() for n, w in original_weights(ctx.model).items()}, ctx)
