"""Learnable gates on structural units: one flow t_c per channel of a unit, gate m_c = [t_c ≥ 0], straight-through.

The gate multiplies the unit's consumer input (the post-nonlinearity activation Y, where zeroing a channel is the
same as removing it): Ŷ_c = m_c · Y_c. Backward, with a constant STE slope s:

    ∂L/∂t_c = s · ∂L/∂m_c = s · Σ_{batch, positions} Y_c · ∂L/∂Ŷ_c

— at m_c = 1 the signed feature-space Taylor term whose absolute per-element value is AGF's utility. A gated-off
channel keeps receiving ∂L/∂t_c, so it can come back (Hyperflows' flow, per unit instead of per weight).
"""
from __future__ import annotations

import torch
from torch import nn

from .flow_mask import heaviside
from .units import Unit


class _StraightThroughGate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t, slope):
        ctx.slope = slope
        return heaviside(t)

    @staticmethod
    def backward(ctx, g):
        return g * ctx.slope, None


class ChannelGate(nn.Module):
    """The flow parameters ``t`` (fp32, one per channel of a unit) and the forward pre-hook that gates the consumer
    input. The channel axis is 1 for a conv consumer (NCHW) and the last one for a linear consumer (tokens, or a
    flattened map whose features are channel-major blocks)."""

    def __init__(self, channels: int, channel_dim: int, init: float = 0.2, slope: float = 0.25,
                 generator: torch.Generator | None = None):
        super().__init__()
        t = torch.empty(channels, dtype=torch.float32)
        t.uniform_(init, 2.5 * init, generator=generator)   # U[t0, 2.5 t0]: every unit starts open
        self.t = nn.Parameter(t)
        self.slope, self.channel_dim = float(slope), int(channel_dim)

    def forward(self, x: torch.Tensor, channel_dim: int | None = None) -> torch.Tensor:
        dim = self.channel_dim if channel_dim is None else channel_dim
        m = _StraightThroughGate.apply(self.t, self.slope).to(x.dtype)
        width = x.shape[dim]
        if width != m.numel():   # a linear layer reading flattened NCHW maps (LeNet-5's fc1): C blocks of H·W
            m = m.repeat_interleave(width // m.numel())
        shape = [1] * x.dim()
        shape[dim] = -1
        return x * m.view(shape)


def _channel_dim(consumer: nn.Module) -> int:
    return 1 if isinstance(consumer, nn.Conv2d) else -1


def _gated_input(module: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook: the consumer reads its gate's output (looked up on the module, so a deep copy of the
    model gates with its own copy of t; a gate shared by a residual group's consumers stays shared)."""
    return (module.channel_gate(args[0], _channel_dim(module)), *args[1:])


def attach_channel_gates(model: nn.Module, units: list[Unit], init: float = 0.2, slope: float = 0.25,
                         seed: int = 0) -> dict[str, ChannelGate]:
    """One :class:`ChannelGate` per unit (registered as ``<consumer>.channel_gate`` so the model's optimizer,
    ``state_dict`` and ``.to()`` see it) and its pre-hook on the consumer; returns unit name -> gate.

    A residual-coupled unit (``include_residual``) has several consumers (every layer reading the stream): the one
    gate sits before each of them, so no layer reads a gated-off channel, which is what removing it from the whole
    group computes, and its t collects ∂L/∂m_c summed over all the readers."""
    gen = torch.Generator().manual_seed(seed)
    gates = {}
    for u in units:
        consumers = u.consumers or ([u.consumer] if u.consumer is not None else [])
        if not consumers:
            raise ValueError(f"unit {u.name} has no consumer to gate")
        device = next(u.layer.parameters()).device
        gate = ChannelGate(u.num_channels, _channel_dim(consumers[0]), init, slope, gen).to(device)
        for consumer in consumers:
            consumer.channel_gate = gate
            consumer.register_forward_pre_hook(_gated_input)
        gates[u.name] = gate
    return gates


def gates_of(model: nn.Module) -> dict[str, ChannelGate]:
    """Consumer module name -> its gate, for every gated consumer of ``model``."""
    return {name: m.channel_gate for name, m in model.named_modules() if isinstance(getattr(m, "channel_gate", None),
                                                                                       ChannelGate)}


def detach_channel_gates(model: nn.Module) -> None:
    """Remove every gate and its hook (the model computes as if all channels were open)."""
    for _, m in list(model.named_modules()):
        if isinstance(getattr(m, "channel_gate", None), ChannelGate):
            for key in [k for k, hook in m._forward_pre_hooks.items() if hook is _gated_input]:
                del m._forward_pre_hooks[key]
            del m.channel_gate
