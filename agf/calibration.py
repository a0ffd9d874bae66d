"""Calibration (spec §1.2): T labelled batches, one forward + one backward each, hooks on every unit.

Y_u is the tensor the unit's consumer reads (the post-nonlinearity map: ReLU output inside a ResNet block,
GELU output in a ViT MLP), so zeroing Y_u[c] equals removing channel c. One backward per batch feeds every
gradient-based scorer at once; per-unit statistics (each averaged over batches):

- ``agf``:      E_x Σ_p |Y·∂L/∂Y|            (abs per element; AGF utility, spec §1.1)
- ``agf_possum``: E_x |Σ_p Y·∂L/∂Y|          (abs after the spatial sum, Molchanov-2017 style; §7 #2)
- ``signed``:   |E_x Σ_p Y·∂L/∂Y| per batch  (abs after aggregating the batch; ``taylor_signed``)
- ``act``, ``grad``: E_x Σ_p |Y|, E_x Σ_p |∂L/∂Y|
- ``taylor``:   (Σ_{w∈W_c} g_w w)² per batch (Molchanov 2019)
- ``grad_w``:   Σ_t g_w (for SNIP), ``in_sq``: Σ X_j² over samples×positions of the producer's input
"""
from __future__ import annotations

from collections import defaultdict

import torch
import torch.nn.functional as F
from torch import nn

from experiments.errors import ConfigError
from experiments.sparsity.units import Unit


def channel_view(x: torch.Tensor, conv: bool, channels: int | None = None) -> torch.Tensor:
    """[B, C, P]: samples, channels, positions (conv maps NCHW; token tensors [B, N, C] or [B, C]). A Linear that
    reads a flattened conv map ([B, C·H·W], channel-major as ``torch.flatten`` lays out NCHW) is viewed as
    [B, C, H·W] when ``channels`` = C, so each conv channel gets one score summed over its positions."""
    if conv:
        return x.flatten(2)
    if x.dim() == 2:
        if channels and x.shape[1] != channels and x.shape[1] % channels == 0:
            return x.reshape(x.shape[0], channels, -1)
        return x.unsqueeze(-1)
    return x.flatten(1, -2).transpose(1, 2)


def feature_stats(y: torch.Tensor, g: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-channel statistics of one batch from Y and ∂L/∂Y, both [B, C, P]."""
    prod = y * g
    return {"agf": prod.abs().sum(2).mean(0), "agf_possum": prod.sum(2).abs().mean(0),
            "signed": prod.sum(2).mean(0).abs(), "act": y.abs().sum(2).mean(0), "grad": g.abs().sum(2).mean(0)}


def per_sample_signal(y: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """s(x) contribution of one unit: Σ_c Σ_p |Y·∂L/∂Y| per sample (spec §5)."""
    return (y * g).abs().flatten(1).sum(1)


def weight_of(layer: nn.Module) -> torch.Tensor:
    """The weight as [C_out, fan_in]."""
    return layer.weight.flatten(1)


class Calibrator:
    """Hooks every unit; ``run(loader)`` returns ``{unit name: {stat: tensor}}`` (averaged over batches)."""

    def __init__(self, model: nn.Module, units: list[Unit], mode: str = "eval", trajectory_lr: float = 0.0,
                 per_sample: bool = False, label_mode: str = "true", position: str = "consumer_input"):
        if position not in ("consumer_input", "pre_activation"):
            raise ConfigError(f"method.calibration.position={position!r}; use consumer_input or pre_activation")
        self.position = position
        self.model, self.units, self.mode = model, units, mode
        self.trajectory_lr, self.per_sample, self.label_mode = trajectory_lr, per_sample, label_mode
        self.acc: dict[str, dict[str, torch.Tensor]] = defaultdict(dict)
        self.signal: list[torch.Tensor] = []   # per batch [2, B]: s(x), activation ℓ1
        self.outputs: list[torch.Tensor] = []
        self._batch_signal: torch.Tensor | None = None
        self.batches = 0

    def _add(self, name: str, key: str, value: torch.Tensor) -> None:
        d = self.acc[name]
        d[key] = d[key] + value if key in d else value.clone()

    def _consumer_hook(self, unit: Unit):
        conv = isinstance(unit.consumer, nn.Conv2d)

        def pre(_mod, args):
            self._watch(unit, args[0], conv, unit.num_channels)
        return pre

    def _pre_activation_hook(self, unit: Unit):
        """Ablation (spec §7 #1): Y = output of the norm after the unit (post-BN, pre-ReLU), else the layer's."""
        conv = isinstance(unit.layer, nn.Conv2d)

        def post(_mod, _args, out):
            self._watch(unit, out, conv)
        return post

    def _watch(self, unit: Unit, x: torch.Tensor, conv: bool, channels: int | None = None) -> None:
        if not x.requires_grad:
            return
        y = channel_view(x.detach(), conv, channels)
        if y.shape[1] != unit.num_channels:
            raise RuntimeError(f"calibration of {unit.name}: its consumer reads {y.shape[1]} features for "
                               f"{unit.num_channels} channels; cannot map them to channels")

        def on_grad(g):
            g = channel_view(g.detach(), conv, channels)
            for k, v in feature_stats(y.float(), g.float()).items():
                self._add(unit.name, k, v)
            if self.per_sample:
                s = torch.stack([per_sample_signal(y.float(), g.float()), y.float().abs().flatten(1).sum(1)])
                self._batch_signal = s if self._batch_signal is None else self._batch_signal + s
        x.register_hook(on_grad)

    def _producer_hook(self, unit: Unit, layer: nn.Module, key: str):
        conv = isinstance(layer, nn.Conv2d)

        def pre(_mod, args):
            x = channel_view(args[0].detach().float(), conv)
            self._add(unit.name, key, x.pow(2).sum((0, 2)))
            self._add(unit.name, key + "_count", torch.tensor(float(x.shape[0] * x.shape[2])))
        return pre

    def run(self, loader) -> dict[str, dict[str, torch.Tensor]]:
        model = self.model
        was_training = model.training
        saved = {k: v.clone() for k, v in model.state_dict().items()} if self.mode == "train" else None
        model.train(self.mode == "train")
        handles = []
        for u in self.units:
            if self.position == "pre_activation":
                handles.append((u.bn or u.layer).register_forward_hook(self._pre_activation_hook(u)))
            elif u.consumer is not None:
                handles.append(u.consumer.register_forward_pre_hook(self._consumer_hook(u)))
            for i, p in enumerate(u.producers or [u.layer]):
                handles.append(p.register_forward_pre_hook(self._producer_hook(u, p, f"in_sq{i}")))
        req = {n: p.requires_grad for n, p in model.named_parameters()}
        for p in model.parameters():
            p.requires_grad_(True)
        try:
            for x, y in loader:
                model.zero_grad(set_to_none=True)
                self._batch_signal = None
                out = model(x)
                target = out.argmax(1).detach() if self.label_mode == "predicted" else y
                loss = F.cross_entropy(out.float(), target, reduction="sum")   # spec §1.2: per-sample scale
                loss.backward()
                self._weight_stats()
                if self.per_sample and self._batch_signal is not None:
                    self.signal.append(self._batch_signal.cpu())
                    self.outputs.append(out.detach().float().cpu())
                if self.trajectory_lr > 0:   # "kinetic trajectory" reading (§7 #3): SGD steps between batches
                    with torch.no_grad():
                        for p in model.parameters():
                            if p.grad is not None:
                                p.add_(p.grad, alpha=-self.trajectory_lr / x.shape[0])
                self.batches += 1
        finally:
            for h in handles:
                h.remove()
            model.zero_grad(set_to_none=True)
            for n, p in model.named_parameters():
                p.requires_grad_(req[n])
            if saved is not None and self.trajectory_lr == 0:
                model.load_state_dict(saved)
            model.train(was_training)
        return self.result()

    @torch.no_grad()
    def _weight_stats(self) -> None:
        for u in self.units:
            for i, p in enumerate(u.producers or [u.layer]):
                if p.weight.grad is None:
                    continue
                w, g = weight_of(p), p.weight.grad.flatten(1)
                gw = (g * w).sum(1)
                if p.bias is not None and p.bias.grad is not None:
                    gw = gw + p.bias.grad * p.bias
                self._add(u.name, f"taylor{i}", gw.pow(2))
                self._add(u.name, f"grad_w{i}", g.clone())

    def result(self) -> dict[str, dict[str, torch.Tensor]]:
        T = max(self.batches, 1)
        out = {}
        for name, d in self.acc.items():
            r = {}
            for k, v in d.items():
                if k.endswith("_count"):
                    continue
                if k.startswith("in_sq"):
                    r["in_norm" + k[5:]] = v.sqrt()   # ||X_j||_2 over all calibration samples × positions
                else:
                    r[k] = v / T
            out[name] = r
        out["_meta"] = {"batches": T}
        return out

    def signal_per_sample(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(s(x), activation ℓ1 Σ_u Σ_p |Y_u|, logits) per calibration sample, in loader order."""
        if not self.signal:
            return torch.empty(0), torch.empty(0), torch.empty(0, 0)
        sig = torch.cat(self.signal, dim=1)
        return sig[0], sig[1], torch.cat(self.outputs)


def calibrate(model: nn.Module, units: list[Unit], loader, **kwargs) -> dict:
    """Functional wrapper around ``Calibrator``."""
    return Calibrator(model, units, **kwargs).run(loader)
