"""``method=hyperflows``: prune by pressure, regrow by flow (arXiv 2504.05349).

Stages:
- ``prune``: give every Conv2d/Linear weight a flow parameter t ~ U[t0, 2.5 t0] (all weights active);
- ``finetune``: E_p pruning epochs (global pressure λ·mean(t), λ from the scheduler, eq. 8–10), then
  E_r regrowth epochs (λ = 0, weight LR reset then cosine, t-LR reset to κ·η_t and decayed by δ, eq.
  11–12). Weights train with SGD (their own cosine phases), t with Adam (state kept across phases);
- ``finalize``: bake m = [t ≥ 0] into the weights (an ordinary model with zeros).

Epoch convention (spec A5, the clean version): epoch 1 trains with λ = 0, λ set after each pruning
epoch applies to the next one, regrowth starts exactly at epoch E_p + 1 (``regrowth.start_delay=1``: at
E_p + 2, as the authors' code does). With ``pressure.fixed_lambda`` set (power-law sweeps) λ is that constant
from the first step and the scheduler is off.

Density control (``scheduler.control``):
- ``open_loop`` (the paper): Algorithm 1 aims the pruning stage at D* = (1 − S)·ρ; regrowth runs with λ = 0
  and the final density is whatever regrowth adds back (ρ guesses it);
- ``closed_loop`` (default): the same pruning stage, then regrowth under a :class:`DensityHold` controller
  that keeps λ = 0 until the density reaches 1 − S and pushes back (Algorithm 1's γ rule) when it overshoots;
  if the final density is still more than ``scheduler.snap_tolerance`` off, the flow threshold is shifted so
  that exactly the top (1 − S)·N flows stay (recorded as ``density_before_snap``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

import numpy as np
import torch
from torch import nn

from experiments import options
from experiments.distributed import is_distributed
from experiments.errors import ConfigError
from experiments.method import Method
from experiments.sparsity.flow_mask import flow_masks
from experiments.sparsity.masks import layer_densities, original_weights
from experiments.train import Callback, ExtraOptimizer

from . import figures
from .flow_kernel import KernelFlowStep, kernel_or_none
from .flow_step import FLOW_DTYPES, FLOW_STEPS, InBackwardFlowStep
from .flows import Flows, create_granularity
from .options import Control, Phases, Pressure, Regrowth, WeightRecipe
from .pressure import add_pressure_grad_, pressure_loss
from .scheduler import DensityHold, PressureScheduler, flow_lr, scheduler_target

if TYPE_CHECKING:  # pragma: no cover
    from experiments.context import StageContext
    from experiments.train import Trainer

log = logging.getLogger(__name__)

HIST_BINS = 80


@dataclass(frozen=True)
class FlowLRSchedule:
    """η_t per epoch (the trainer sets it at each epoch start, like the weight LR)."""

    base_lr: float
    pruning_epochs: int
    regrowth_scale: float
    regrowth_decay: float
    zero_after: int
    epochs: int
    first_power: int = 0

    def lr_at(self, epoch: int) -> float:
        return flow_lr(epoch, self.base_lr, self.pruning_epochs, self.regrowth_scale, self.regrowth_decay,
                       self.zero_after, self.first_power)


def adam(params: list[torch.Tensor], lr: float) -> torch.optim.Adam:
    """Adam on the flow parameters (betas 0.9/0.999, eps 1e-8, no decay); the fused kernel where this torch
    has one for the device (one pass over the N flow parameters instead of several), else the default."""
    kwargs = {"lr": lr, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}
    try:
        return torch.optim.Adam(params, fused=True, **kwargs)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, **kwargs)


def weight_histogram(weights: list[torch.Tensor], masks: list[torch.Tensor], bins: int = HIST_BINS) -> dict:
    """Histogram of the active weights (the paper's Fig. 12 before/after regrowth)."""
    values = torch.cat([w.detach()[m].flatten().float().cpu() for w, m in zip(weights, masks)])
    if values.numel() == 0:
        return {"counts": [], "edges": []}
    lim = float(values.abs().max())
    counts, edges = np.histogram(values.numpy(), bins=bins, range=(-lim, lim))
    return {"counts": counts.tolist(), "edges": edges.tolist()}


@torch.no_grad()
def snap_flows(flows: Flows, density: float, tolerance: float, trained_after: bool) -> dict:
    """Closed loop, last resort: shift every t by the k-th largest flow so that exactly k = D·N flows stay (with
    costs: the largest flows worth D of the cost), when the density is more than ``tolerance`` off D. Returns the
    record keys ``density_before_snap`` and ``snap_flips``."""
    before = flows.density()
    tau, aim = flows.snap_target(density)
    if abs(before - aim) <= tolerance:
        return {"density_before_snap": before, "snap_flips": 0}
    old = flows.masks()
    for t in flows.ts:
        t.sub_(tau)
    flips = sum(int((o != (t >= 0)).sum()) for o, t in zip(old, flows.ts))
    if abs(before - aim) > 0.01 and not trained_after:   # more than a point, untrained: a blind cut
        log.warning("hyperflows: the closed loop ended at %.2f %% density for %.2f %% asked; snapping %d flows "
                    "without training after it (expect lost accuracy; set method.scheduler.settle_epochs, give the "
                    "pruning stage more epochs or a larger flow_lr)", 100 * before, 100 * aim, flips)
    log.info("hyperflows: density %.4f %% -> %.4f %% (closed-loop snap, %d flips%s)", 100 * before,
             100 * flows.density(), flips, ", masks frozen from here" if trained_after else "")
    return {"density_before_snap": before, "snap_flips": flips}


class HyperflowsCallback(Callback):
    """Per-step pressure gradient on t; per-epoch density, flips, γ update, phase switch, instrumentation."""

    def __init__(self, model: nn.Module, flows: Flows, target_sparsity: float, phases: Phases, pressure: Pressure,
                 control: Control, regrowth: Regrowth, flow_lr: float, closed_loop: bool, per_weight: bool = True,
                 flow_step: str = "in_backward", seed: int = 0):
        self.model, self.flows, self.per_weight, self.flow_step = model, flows, per_weight, flow_step
        self.seed = seed
        self.sink: InBackwardFlowStep | KernelFlowStep | None = None
        self.in_backward = False   # set by optimizers(): t is updated inside backward (hyperflows.flow_step)
        self.phases, self.pressure, self.regrowth, self.flow_lr = phases, pressure, regrowth, flow_lr
        self.names, self.ts, self.n = flows.names, flows.ts, flows.n
        self.scheduler = None
        self.ticks = control.ticks(phases.pruning_epochs)
        if pressure.fixed_lambda is None:
            self.scheduler = PressureScheduler(
                target_density=scheduler_target(target_sparsity, control.regrowth_offset),
                epochs=phases.pruning_epochs * self.ticks, step_size=control.step_size, exponent=pressure.exponent,
                aggressivity=control.aggressivity, end_retention=control.end_retention ** (1.0 / self.ticks))
        self.hold = (DensityHold(target_density=1.0 - target_sparsity, step_size=control.step_size,
                                 exponent=pressure.exponent)
                     if closed_loop and self.scheduler is not None else None)
        # closed loop with settle epochs (at most the regrowth epochs): snap at the start of the last ones, then the
        # masks stay fixed
        settle = min(control.settle_epochs, phases.regrowth_epochs)
        self.settle_at = (phases.pressure_epochs + phases.regrowth_epochs - settle
                          if self.hold is not None and settle else None)
        self.target_density, self.snap_tolerance = 1.0 - target_sparsity, control.snap_tolerance
        self.snapped: dict | None = None   # the settle snap's record keys, once it ran
        self.epoch = 0
        self.step_in_epoch = 0
        self.tick_steps: dict[int, int] | None = None
        self.lam = float(pressure.fixed_lambda or 0.0)
        self.prev_masks: list[torch.Tensor] | None = None
        self.hist_prune_end: dict | None = None
        self.flow_opt: torch.optim.Adam | None = None

    # -- optimizer for t ---------------------------------------------------------------------------
    def optimizers(self, trainer: "Trainer") -> list[ExtraOptimizer]:
        p, r = self.phases, self.regrowth
        self.flow_opt = adam(self.ts, self.flow_lr)
        schedule = FlowLRSchedule(self.flow_lr, p.pressure_epochs, r.flow_lr_scale, r.flow_lr_decay,
                                  r.flow_lr_zero_after, p.pressure_epochs + p.regrowth_epochs, r.flow_lr_first_power)
        self.in_backward = self.flow_step in ("in_backward", "kernel") and self.in_backward_possible(trainer)
        low = any(t.dtype != torch.float32 for t in self.ts)
        if low and not self.in_backward:
            raise ConfigError("method.flow_dtype=bfloat16 needs method.flow_step=in_backward or kernel (round-to-"
                              "nearest Adam on bf16 flows drops most updates) and no trainer.grad_clip, compile or DDP")
        if self.in_backward:
            self.sink = InBackwardFlowStep(self.flow_opt, self.pressure_grad, seed=self.seed)
            if self.flow_step == "kernel":   # the same step as one compiled pass per layer (CPU, fp32)
                self.sink = kernel_or_none(self.sink) or self.sink
            for mask in flow_masks(self.model).values():
                mask.sink = self.sink
        if self.frozen:
            self.freeze()
        return [ExtraOptimizer(self.flow_opt, schedule, name="flow", in_backward=self.in_backward)]

    def in_backward_possible(self, trainer: "Trainer") -> bool:
        """Per-weight flows, and nothing that needs every ∂L/∂t before the update (gradient clipping, DDP's
        all-reduce, a compiled step): elsewhere the reference step runs."""
        ok = self.per_weight and not trainer.grad_clip and not trainer.compile and not is_distributed()
        if self.per_weight and not ok:
            log.info("hyperflows: method.flow_step=in_backward needs no trainer.grad_clip, compile or DDP; "
                     "the flows take the optimizer step")
        return ok

    def pressure_grad(self, t: torch.Tensor) -> float | torch.Tensor:
        """∂L_pressure/∂t of one flow tensor now (eq. 10: λ/N, times 1(t > −ε) with a threshold); 0 when off."""
        if not (self.pressure_on and self.lam > 0):
            return 0.0
        step = self.lam / max(self.n, 1)
        if self.pressure.threshold is None:
            return step
        return (t > -self.pressure.threshold).to(torch.float32).mul_(step)

    def on_fit_end(self, trainer: "Trainer") -> None:
        """Detach the sinks; bf16 flows go back to fp32 (snap and finalize see exact values)."""
        for mask in flow_masks(self.model).values():
            mask.sink = None
            if mask.t.dtype != torch.float32:
                mask.t.data = mask.t.data.float()
    # -- per step -----------------------------------------------------------------------------------
    def ticks_at(self, trainer: "Trainer") -> dict[int, int]:
        """Steps of an epoch after which an intermediate scheduler update runs -> its index q (the last
        update of an epoch is at its end). Built on first use: a resumed fit skips ``on_fit_start``."""
        if self.tick_steps is None:
            steps = trainer.steps_per_epoch
            self.tick_steps = {round(q * steps / self.ticks): q for q in range(1, self.ticks)}
        return self.tick_steps

    @property
    def frozen(self) -> bool:
        """After the settle snap: no pressure, no flow update, the masks stay as snapped."""
        return self.snapped is not None

    def freeze(self) -> None:
        for mask in flow_masks(self.model).values():
            mask.sink = None
        for t in self.ts:
            t.requires_grad_(False)
            t.grad = None
        self.lam = 0.0

    def on_epoch_start(self, trainer: "Trainer", epoch: int) -> None:
        self.epoch, self.step_in_epoch = epoch, 0
        if self.settle_at is not None and epoch >= self.settle_at and not self.frozen:
            self.snapped = snap_flows(self.flows, self.target_density, self.snap_tolerance, trained_after=True)
            self.freeze()
        self.prev_masks = [t.detach() >= 0 for t in self.ts]
        self.flows.refresh(self.prev_masks)   # cost-weighted pressure: shares at this epoch's widths
        if self.hold is not None and epoch >= self.phases.pressure_epochs and not self.frozen:
            self.lam = self.hold.lam   # regrowth starts at λ = 0 (the hold controller's γ starts at 0)

    @property
    def pruning(self) -> bool:
        """In the pruning stage (derived from the epoch, so a mid-epoch resume agrees)."""
        return self.epoch < self.phases.pressure_epochs

    @property
    def pressure_on(self) -> bool:
        """Pressure acts in the pruning epochs, and in regrowth under the closed-loop hold controller (not once the
        settle snap froze the masks)."""
        return not self.frozen and (self.pruning or self.hold is not None)

    def density(self) -> float:
        return self.flows.density()

    def on_after_backward(self, trainer: "Trainer") -> None:
        if self.pressure_on and self.lam > 0 and not self.in_backward:   # in backward: folded into the t step
            add_pressure_grad_(self.ts, self.lam, self.pressure.threshold, self.flows.shares)

    @torch.no_grad()
    def on_after_step(self, trainer: "Trainer") -> None:
        self.step_in_epoch += 1
        q = self.ticks_at(trainer).get(self.step_in_epoch)
        if q is None or self.scheduler is None or self.frozen:
            return
        if self.pruning:
            self.lam = self.scheduler.step(self.epoch * self.ticks + q, self.density())
        elif self.hold is not None:
            self.lam = self.hold.step(self.density())

    # -- per epoch ----------------------------------------------------------------------------------
    @torch.no_grad()
    def on_epoch_end(self, trainer: "Trainer", epoch: int, metrics: dict) -> dict:
        ph, e = self.phases, epoch + 1
        masks = [t >= 0 for t in self.ts]
        density = self.flows.density(masks)
        lam = self.lam if self.pressure_on else 0.0
        out = {"density": density, "lambda": lam,
               "pressure_loss": float(pressure_loss(self.ts, lam, self.pressure.threshold, self.flows.shares))}
        if self.prev_masks is not None:
            out["flips_pruned"] = sum(int((p & ~k).sum()) for p, k in zip(self.prev_masks, masks))
            out["flips_regrown"] = sum(int((~p & k).sum()) for p, k in zip(self.prev_masks, masks))
            out["flips"] = out["flips_pruned"] + out["flips_regrown"]
        out.update(self.flow_stats(masks))
        for name, d in layer_densities(dict(zip(self.names, masks))).items():
            out[f"layer_density/{name}"] = d
        if self.scheduler is not None and e <= ph.pressure_epochs:
            out["expected_density"] = self.scheduler.expected_density(e * self.ticks)
            if e < ph.pressure_epochs:
                self.lam = self.scheduler.step(e * self.ticks, density)
            out["gamma"] = self.scheduler.gamma
        elif self.hold is not None:
            out["expected_density"] = self.hold.target_density
            if not self.frozen:
                self.lam = self.hold.step(density)
            out["gamma"] = self.hold.gamma
        if e == ph.pressure_epochs and ph.regrowth_epochs > 0:
            if self.per_weight:
                self.hist_prune_end = weight_histogram(list(original_weights(self.model).values()), masks)
            out["density_prune_end"] = density
            log.info("hyperflows: pruning stage done at %.3f %% density; regrowth for %d epochs", 100 * density,
                     ph.regrowth_epochs)
        return out

    def flow_stats(self, masks: list[torch.Tensor]) -> dict:
        """Flow of the pruned weights from Adam's first moment of ∂L/∂t, pressure removed (≈ −flow):
        mean flow, and the fraction whose flow is positive (they would regrow without pressure)."""
        if self.flow_opt is None:
            return {}
        lam = self.lam if self.pressure_on else 0.0
        shares = self.flows.shares or [None] * len(self.ts)
        flows, t_pruned = [], []
        for t, k, share in zip(self.ts, masks, shares):
            st = self.flow_opt.state.get(t, {})
            if "exp_avg" not in st or bool(k.all()):
                continue
            pressure = lam / self.n if share is None else lam * share[~k]
            flows.append(-(st["exp_avg"][~k] - pressure * (t[~k] > -(self.pressure.threshold or float("inf")))))
            t_pruned.append(t[~k])
        if not flows:
            return {}
        f = torch.cat(flows)
        return {"flow_mean_pruned": float(f.mean()), "flow_positive_frac": float((f > 0).float().mean()),
                "t_mean_pruned": float(torch.cat(t_pruned).mean())}

    def state_dict(self) -> dict:
        return {"lam": self.lam, "scheduler": self.scheduler.state_dict() if self.scheduler else None,
                "hold": self.hold.state_dict() if self.hold else None,
                "epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
                "prev_masks": self.prev_masks, "hist_prune_end": self.hist_prune_end, "snapped": self.snapped,
                "rounding_rng": self.sink.generator.get_state() if self.sink is not None else None}

    def load_state_dict(self, state: dict) -> None:
        self.lam = state["lam"]
        if self.scheduler is not None and state.get("scheduler"):
            self.scheduler.load_state_dict(state["scheduler"])
        if self.hold is not None and state.get("hold"):
            self.hold.load_state_dict(state["hold"])
        self.prev_masks = state.get("prev_masks")
        self.epoch, self.step_in_epoch = state.get("epoch", 0), state.get("step_in_epoch", 0)
        self.hist_prune_end = state.get("hist_prune_end")
        self.snapped = state.get("snapped")
        if self.frozen:
            self.freeze()
        if self.sink is not None and state.get("rounding_rng") is not None:
            self.sink.generator.set_state(state["rounding_rng"])


class Hyperflows(Method):
    """Hyperparameters as in Appendix D (spec §5); names say what each one is."""

    def __init__(self, target_sparsity: float, epochs: int, seed: int, name: str = "hyperflows",
                 pruning_epochs: int | None = None, pruning_fraction: float = 0.625, from_scratch: bool = False,
                 t_init: float = 0.2, ste_slope: float = 0.25, flow_lr: float = 1e-3,
                 pressure: Pressure | Mapping | None = None, scheduler: Control | Mapping | None = None,
                 regrowth: Regrowth | Mapping | None = None, weights: WeightRecipe | Mapping | None = None,
                 label_smoothing: float = 0.1, figures: bool = True, lr: float | None = None,
                 granularity: str = "weights", units: Mapping | None = None, flow_step: str = "in_backward",
                 flow_dtype: str = "float32"):
        super().__init__(name=name, finetune=True, lr=lr)
        if not 0.0 <= float(target_sparsity) < 1.0:
            raise ConfigError(f"method.target_sparsity={target_sparsity} must be in [0, 1)")
        self.target_sparsity = float(target_sparsity)
        self.needs_dense = not from_scratch
        self.pressure = options.build(Pressure, pressure, "method.pressure")
        self.control = options.build(Control, scheduler, "method.scheduler")
        self.regrowth = options.build(Regrowth, regrowth, "method.regrowth")
        self.weights = options.build(WeightRecipe, weights, "method.weights")
        if self.lr is not None:
            self.weights = self.weights.scaled_to(self.lr)
        self.phases = Phases.split(int(epochs), pruning_epochs, pruning_fraction, self.regrowth.start_delay)
        self.t_init, self.ste_slope, self.flow_lr = float(t_init), float(ste_slope), float(flow_lr)
        self.closed_loop = self.control.control == "closed_loop" and self.pressure.fixed_lambda is None
        self.label_smoothing = float(label_smoothing)
        self.seed = int(seed)
        self.make_figures = bool(figures)
        if flow_step not in FLOW_STEPS:
            raise ConfigError(f"method.flow_step={flow_step!r}; use {' or '.join(FLOW_STEPS)}")
        if flow_dtype not in FLOW_DTYPES:
            raise ConfigError(f"method.flow_dtype={flow_dtype!r}; use {' or '.join(FLOW_DTYPES)}")
        if flow_dtype != "float32" and flow_step == "optimizer":
            raise ConfigError("method.flow_dtype=bfloat16 needs method.flow_step=in_backward or kernel (stochastic "
                              "rounding happens in the in-backward step)")
        self.granularity = create_granularity(granularity, self.t_init, self.ste_slope, self.seed, units,
                                              FLOW_DTYPES[flow_dtype])
        self.flow_step = flow_step
        self.callback: HyperflowsCallback | None = None

    # -- stages -------------------------------------------------------------------------------------
    def prune(self, ctx: "StageContext") -> None:
        """Attach the flow parameters; nothing is removed yet (pruning happens during ``finetune``)."""
        self.granularity.attach(ctx)
        most = ctx.metrics.get("unit_max_reduction")   # units: at least one channel of each stays
        if most is not None and self.target_sparsity > most:
            raise ConfigError(f"sparsity.target={self.target_sparsity} is unreachable with method.granularity=units: "
                              f"removing channels can save at most {most:.3f} of the model's cost; ask for less")

    def schedule_phases(self) -> list[dict]:
        w, p = self.weights, self.phases
        phases = [{"epochs": p.pressure_epochs, "lr": w.lr_prune_start, "kind": "cosine",
                   "final_lr": w.lr_prune_end}]
        if p.regrowth_epochs:
            phases.append({"epochs": p.regrowth_epochs, "lr": w.lr_regrow_start, "kind": "cosine",
                           "final_lr": w.lr_regrow_end})
        return phases

    def callbacks(self, ctx: "StageContext") -> list[Callback]:
        self.callback = self.make_callback(ctx.model)
        return [self.callback]

    def make_callback(self, model: nn.Module) -> "HyperflowsCallback":
        """The per-step/per-epoch hook of this method's options on ``model`` (its flow masks attached)."""
        return HyperflowsCallback(model, self.granularity.flows(model), self.target_sparsity, self.phases,
                                  self.pressure, self.control, self.regrowth, self.flow_lr,
                                  closed_loop=self.closed_loop, per_weight=self.granularity.per_weight,
                                  flow_step=self.flow_step, seed=self.seed)

    def fit_options(self, ctx: "StageContext") -> dict:
        """E_p + E_r epochs, the weight recipe (SGD by default) with its two cosine phases, the method's label smoothing."""
        w = self.weights
        optimizer = {"name": w.optimizer, "lr": w.lr_prune_start, "momentum": w.momentum,
                     "weight_decay": w.weight_decay, "nesterov": False,
                     "no_decay_bias_norm": w.no_decay_bias_norm}
        return {"phase": "finetune", "epochs": self.phases.pressure_epochs + self.phases.regrowth_epochs,
                "schedule_phases": self.schedule_phases(), "optimizer": optimizer,
                "label_smoothing": self.label_smoothing}

    def after_finetune(self, ctx: "StageContext", result) -> None:
        if self.closed_loop:
            self.snap(ctx)
        self.record(ctx, result.history)

    def snap(self, ctx: "StageContext") -> None:
        """Closed loop, after training: :func:`snap_flows` to 1 − S, unless the callback already snapped at the start
        of the settle epochs (``scheduler.settle_epochs``)."""
        done = self.callback.snapped if self.callback is not None else None
        ctx.metrics.update(done if done is not None else
                           snap_flows(self.granularity.flows(ctx.model), 1.0 - self.target_sparsity,
                                      self.control.snap_tolerance, trained_after=False))

    def record(self, ctx: "StageContext", history: list[dict]) -> None:
        """Per-epoch curves and end-of-stage numbers into the record; figures under the run dir."""
        m = ctx.metrics
        keys = ("density", "gamma", "lambda", "flips", "flips_pruned", "flips_regrown", "expected_density",
                "test_acc", "flow_positive_frac")
        m["hyperflows_history"] = {k: [h.get(k) for h in history] for k in keys}
        last = history[-1] if history else {}
        flows = self.granularity.flows(ctx.model)
        masks = dict(zip(flows.names, flows.masks()))
        m["density"] = flows.density(list(masks.values()))
        m.update(self.granularity.summary(masks))
        m["flips_last_epoch"] = last.get("flips")
        gammas = [h["gamma"] for h in history if "gamma" in h]
        m["gamma_final"] = gammas[-1] if gammas else None
        m["lambda_final"] = self.callback.lam if self.callback else None
        e = self.phases.pressure_epochs
        if len(history) >= e:
            m["density_prune_end"] = history[e - 1]["density"]
            m["test_acc_prune_end"] = history[e - 1].get("test_acc")
        if not self.make_figures or self.callback is None:
            return
        hist_end = None
        if self.granularity.per_weight:
            weights = original_weights(ctx.model)
            hist_end = weight_histogram([weights[n] for n in masks], list(masks.values()))
        try:
            paths = figures.write_all(ctx.figure_path, history, layer_densities(masks),
                                      self.callback.hist_prune_end, hist_end, masks,
                                      image_shape=(ctx.data.in_channels, ctx.data.image_size, ctx.data.image_size))
        except Exception as exc:  # noqa: BLE001 - a figure never fails a run
            log.warning("hyperflows figures failed: %s", exc)
            return
        m["hyperflows_figures"] = [str(p) for p in paths.values()]
        for key, path in paths.items():
            ctx.tracker.image(f"hyperflows/{key}", str(path))

    def finalize(self, model: nn.Module) -> nn.Module:
        return self.granularity.finalize(model)
