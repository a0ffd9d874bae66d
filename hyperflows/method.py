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
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from experiments.errors import ConfigError
from experiments.method import Method
from experiments.sparsity.flow_mask import attach_flow_masks, flow_parameters
from experiments.sparsity.masks import density as mask_density
from experiments.sparsity.masks import finalize, layer_densities, original_weights
from experiments.train import Callback, ExtraOptimizer

from . import figures
from .pressure import add_pressure_grad_, pressure_loss
from .scheduler import DensityHold, PressureScheduler, flow_lr, scheduler_target, snap_threshold

if TYPE_CHECKING:  # pragma: no cover
    from experiments.context import StageContext
    from experiments.train import Trainer

log = logging.getLogger(__name__)

HIST_BINS = 80
#: ``scheduler.updates_per_epoch=auto``: about this many Algorithm-1 updates over the pruning stage
#: (the paper's E_p = 100 gives one per epoch; a 10-epoch CPU proxy gets 4 per epoch)
MIN_SCHEDULER_UPDATES = 40


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


class HyperflowsCallback(Callback):
    """Per-step pressure gradient on t; per-epoch density, flips, γ update, phase switch, instrumentation."""

    def __init__(self, method: "Hyperflows", model: nn.Module):
        self.m = method
        self.model = model
        self.names = list(flow_parameters(model))
        self.ts = list(flow_parameters(model).values())
        self.n = sum(t.numel() for t in self.ts)
        self.scheduler = None
        self.ticks = method.updates_per_epoch   # Algorithm-1 updates per epoch (1 = the paper)
        if method.fixed_lambda is None:
            self.scheduler = PressureScheduler(
                target_density=scheduler_target(method.target_sparsity, method.regrowth_offset),
                epochs=method.pruning_epochs * self.ticks, step_size=method.step_size, exponent=method.exponent,
                aggressivity=method.aggressivity, end_retention=method.end_retention ** (1.0 / self.ticks))
        self.hold = (DensityHold(target_density=1.0 - method.target_sparsity, step_size=method.step_size,
                                 exponent=method.exponent)
                     if method.closed_loop and self.scheduler is not None else None)
        self.epoch = 0
        self.step_in_epoch = 0
        self.tick_steps: dict[int, int] | None = None
        self.lam = float(method.fixed_lambda or 0.0)
        self.prev_masks: list[torch.Tensor] | None = None
        self.hist_prune_end: dict | None = None
        self.flow_opt: torch.optim.Adam | None = None

    # -- optimizer for t ---------------------------------------------------------------------------
    def optimizers(self, trainer: "Trainer") -> list[ExtraOptimizer]:
        m = self.m
        self.flow_opt = adam(self.ts, m.flow_lr)
        schedule = FlowLRSchedule(m.flow_lr, m.pressure_epochs, m.regrowth_flow_lr_scale, m.regrowth_flow_lr_decay,
                                  m.regrowth_flow_lr_zero_after, m.pressure_epochs + m.regrowth_epochs,
                                  m.regrowth_flow_lr_first_power)
        return [ExtraOptimizer(self.flow_opt, schedule, name="flow")]

    # -- per step -----------------------------------------------------------------------------------
    def ticks_at(self, trainer: "Trainer") -> dict[int, int]:
        """Steps of an epoch after which an intermediate scheduler update runs -> its index q (the last
        update of an epoch is at its end). Built on first use: a resumed fit skips ``on_fit_start``."""
        if self.tick_steps is None:
            steps = trainer.steps_per_epoch
            self.tick_steps = {round(q * steps / self.ticks): q for q in range(1, self.ticks)}
        return self.tick_steps

    def on_epoch_start(self, trainer: "Trainer", epoch: int) -> None:
        self.epoch, self.step_in_epoch = epoch, 0
        self.prev_masks = [t.detach() >= 0 for t in self.ts]
        if self.hold is not None and epoch >= self.m.pressure_epochs:
            self.lam = self.hold.lam   # regrowth starts at λ = 0 (the hold controller's γ starts at 0)

    @property
    def pruning(self) -> bool:
        """In the pruning stage (derived from the epoch, so a mid-epoch resume agrees)."""
        return self.epoch < self.m.pressure_epochs

    @property
    def pressure_on(self) -> bool:
        """Pressure acts in the pruning epochs, and in regrowth under the closed-loop hold controller."""
        return self.pruning or self.hold is not None

    def density(self) -> float:
        return mask_density(t >= 0 for t in self.ts)

    def on_after_backward(self, trainer: "Trainer") -> None:
        if self.pressure_on and self.lam > 0:
            add_pressure_grad_(self.ts, self.lam, self.m.threshold)

    @torch.no_grad()
    def on_after_step(self, trainer: "Trainer") -> None:
        self.step_in_epoch += 1
        q = self.ticks_at(trainer).get(self.step_in_epoch)
        if q is None or self.scheduler is None:
            return
        if self.pruning:
            self.lam = self.scheduler.step(self.epoch * self.ticks + q, self.density())
        elif self.hold is not None:
            self.lam = self.hold.step(self.density())

    # -- per epoch ----------------------------------------------------------------------------------
    @torch.no_grad()
    def on_epoch_end(self, trainer: "Trainer", epoch: int, metrics: dict) -> dict:
        m, e = self.m, epoch + 1
        masks = [t >= 0 for t in self.ts]
        density = mask_density(masks)
        out = {"density": density, "lambda": self.lam if self.pressure_on else 0.0,
               "pressure_loss": float(pressure_loss(self.ts, self.lam if self.pressure_on else 0.0, m.threshold))}
        if self.prev_masks is not None:
            out["flips_pruned"] = sum(int((p & ~k).sum()) for p, k in zip(self.prev_masks, masks))
            out["flips_regrown"] = sum(int((~p & k).sum()) for p, k in zip(self.prev_masks, masks))
            out["flips"] = out["flips_pruned"] + out["flips_regrown"]
        out.update(self.flow_stats(masks))
        for name, d in layer_densities(dict(zip(self.names, masks))).items():
            out[f"layer_density/{name}"] = d
        if self.scheduler is not None and e <= m.pressure_epochs:
            out["expected_density"] = self.scheduler.expected_density(e * self.ticks)
            if e < m.pressure_epochs:
                self.lam = self.scheduler.step(e * self.ticks, density)
            out["gamma"] = self.scheduler.gamma
        elif self.hold is not None:
            out["expected_density"] = self.hold.target_density
            self.lam = self.hold.step(density)
            out["gamma"] = self.hold.gamma
        if e == m.pressure_epochs and m.regrowth_epochs > 0:
            weights = list(original_weights(self.model).values())
            self.hist_prune_end = weight_histogram(weights, masks)
            out["density_prune_end"] = density
            log.info("hyperflows: pruning stage done at %.3f %% density; regrowth for %d epochs", 100 * density,
                     m.regrowth_epochs)
        return out

    def flow_stats(self, masks: list[torch.Tensor]) -> dict:
        """Flow of the pruned weights from Adam's first moment of ∂L/∂t, pressure removed (≈ −flow):
        mean flow, and the fraction whose flow is positive (they would regrow without pressure)."""
        if self.flow_opt is None:
            return {}
        pressure = (self.lam / self.n) if self.pressure_on else 0.0
        flows, t_pruned = [], []
        for t, k in zip(self.ts, masks):
            st = self.flow_opt.state.get(t, {})
            if "exp_avg" not in st or bool(k.all()):
                continue
            flows.append(-(st["exp_avg"][~k] - pressure * (t[~k] > -(self.m.threshold or float("inf")))))
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
                "prev_masks": self.prev_masks, "hist_prune_end": self.hist_prune_end}

    def load_state_dict(self, state: dict) -> None:
        self.lam = state["lam"]
        if self.scheduler is not None and state.get("scheduler"):
            self.scheduler.load_state_dict(state["scheduler"])
        if self.hold is not None and state.get("hold"):
            self.hold.load_state_dict(state["hold"])
        self.prev_masks = state.get("prev_masks")
        self.epoch, self.step_in_epoch = state.get("epoch", 0), state.get("step_in_epoch", 0)
        self.hist_prune_end = state.get("hist_prune_end")


class Hyperflows(Method):
    """Hyperparameters as in Appendix D (spec §5); names say what each one is."""

    def __init__(self, name: str = "hyperflows", target_sparsity: float = 0.9, epochs: int = 160,
                 pruning_epochs: int | None = None, pruning_fraction: float = 0.625, from_scratch: bool = False,
                 t_init: float = 0.2, ste_slope: float = 0.25, flow_lr: float = 1e-3,
                 pressure: dict | None = None, scheduler: dict | None = None, regrowth: dict | None = None,
                 weights: dict | None = None, label_smoothing: float = 0.1, seed: int = 0, figures: bool = True,
                 lr: float | None = None):
        super().__init__(name=name, finetune=True, lr=lr)
        if not 0.0 <= float(target_sparsity) < 1.0:
            raise ConfigError(f"method.target_sparsity={target_sparsity} must be in [0, 1)")
        self.target_sparsity = float(target_sparsity)
        self.needs_dense = not from_scratch
        epochs = int(epochs)
        self.pruning_epochs = (max(1, round(pruning_fraction * epochs)) if pruning_epochs is None
                               else int(pruning_epochs))
        if not 1 <= self.pruning_epochs <= epochs:
            raise ConfigError(f"method.pruning_epochs={self.pruning_epochs} must be in [1, method.epochs={epochs}]")
        r = dict(regrowth or {})
        self.start_delay = int(r.get("start_delay", 0))
        #: epochs under pressure before the regrowth reset: E_p (+1 with the authors' timing)
        self.pressure_epochs = self.pruning_epochs + self.start_delay
        if not 0 <= self.start_delay or self.pressure_epochs > epochs:
            raise ConfigError(f"method.regrowth.start_delay={self.start_delay} must be >= 0 with pruning_epochs + "
                             f"start_delay <= method.epochs={epochs}")
        self.regrowth_epochs = epochs - self.pressure_epochs
        self.t_init, self.ste_slope, self.flow_lr = float(t_init), float(ste_slope), float(flow_lr)
        p = dict(pressure or {})
        self.exponent = float(p.get("exponent", 1.5))
        self.threshold = None if p.get("threshold") is None else float(p["threshold"])
        self.fixed_lambda = None if p.get("fixed_lambda") is None else float(p["fixed_lambda"])
        s = dict(scheduler or {})
        self.step_size = float(s.get("step_size", 0.2))
        self.aggressivity = float(s.get("aggressivity", 6.0))
        self.end_retention = float(s.get("end_retention", 0.999))
        self.regrowth_offset = float(s.get("regrowth_offset", 11.5 / 13))
        self.control = str(s.get("control", "closed_loop"))
        if self.control not in ("closed_loop", "open_loop"):
            raise ConfigError(f"method.scheduler.control={self.control!r}; use closed_loop or open_loop")
        self.closed_loop = self.control == "closed_loop" and self.fixed_lambda is None
        self.snap_tolerance = float(s.get("snap_tolerance", 0.001))
        k = s.get("updates_per_epoch", "auto")
        self.updates_per_epoch = max(1, round(MIN_SCHEDULER_UPDATES / self.pruning_epochs)) if k == "auto" else int(k)
        if self.updates_per_epoch < 1:
            raise ConfigError(f"method.scheduler.updates_per_epoch={self.updates_per_epoch} must be >= 1")
        self.regrowth_flow_lr_scale = float(r.get("flow_lr_scale", 5.0))
        self.regrowth_flow_lr_decay = float(r.get("flow_lr_decay", 0.75))
        self.regrowth_flow_lr_zero_after = int(r.get("flow_lr_zero_after", 50))
        self.regrowth_flow_lr_first_power = int(r.get("flow_lr_first_power", 0))
        self.weights = {"optimizer": "sgd", "momentum": 0.9, "weight_decay": 5e-4, "lr_prune_start": 0.1,
                        "lr_prune_end": 0.01 / 3, "lr_regrow_start": 1e-3, "lr_regrow_end": 1e-4, **(weights or {})}
        if self.lr is not None:  # method.lr is η_w^0; the other phase LRs keep their ratios to it
            scale = self.lr / float(self.weights["lr_prune_start"])
            for key in ("lr_prune_start", "lr_prune_end", "lr_regrow_start", "lr_regrow_end"):
                self.weights[key] = float(self.weights[key]) * scale
        self.label_smoothing = float(label_smoothing)
        self.seed = int(seed)
        self.make_figures = bool(figures)
        self.callback: HyperflowsCallback | None = None

    # -- stages -------------------------------------------------------------------------------------
    def prune(self, ctx: "StageContext") -> None:
        """Attach the flow parameters; nothing is removed yet (pruning happens during ``finetune``)."""
        attach_flow_masks(ctx.model, init=self.t_init, slope=self.ste_slope, seed=self.seed)

    def schedule_phases(self) -> list[dict]:
        w = self.weights
        phases = [{"epochs": self.pressure_epochs, "lr": w["lr_prune_start"], "kind": "cosine",
                   "final_lr": w["lr_prune_end"]}]
        if self.regrowth_epochs:
            phases.append({"epochs": self.regrowth_epochs, "lr": w["lr_regrow_start"], "kind": "cosine",
                           "final_lr": w["lr_regrow_end"]})
        return phases

    def callbacks(self, ctx: "StageContext") -> list[Callback]:
        self.callback = HyperflowsCallback(self, ctx.model)
        return [self.callback]

    def fit_options(self, ctx: "StageContext") -> dict:
        """E_p + E_r epochs, SGD on the weights with the two cosine phases, the method's label smoothing."""
        w = self.weights
        optimizer = {"name": w["optimizer"], "lr": w["lr_prune_start"], "momentum": w["momentum"],
                     "weight_decay": w["weight_decay"], "nesterov": False, "no_decay_bias_norm": False}
        return {"phase": "finetune", "epochs": self.pressure_epochs + self.regrowth_epochs,
                "schedule_phases": self.schedule_phases(), "optimizer": optimizer,
                "label_smoothing": self.label_smoothing}

    def after_finetune(self, ctx: "StageContext", result) -> None:
        if self.closed_loop:
            self.snap(ctx)
        self.record(ctx, result.history)

    @torch.no_grad()
    def snap(self, ctx: "StageContext") -> None:
        """Closed loop, last resort: shift every t by the k-th largest flow so that exactly k = (1 − S)·N weights
        stay, when the trained density is more than ``snap_tolerance`` off the asked one."""
        ts = list(flow_parameters(ctx.model).values())
        n = sum(t.numel() for t in ts)
        before = mask_density(t >= 0 for t in ts)
        ctx.metrics["density_before_snap"] = before
        keep = round((1.0 - self.target_sparsity) * n)
        if abs(before - keep / n) <= self.snap_tolerance:
            ctx.metrics["snap_flips"] = 0
            return
        old = [t >= 0 for t in ts]
        tau = snap_threshold(ts, keep)
        for t in ts:
            t.sub_(tau)
        ctx.metrics["snap_flips"] = sum(int((o != (t >= 0)).sum()) for o, t in zip(old, ts))
        if abs(before - keep / n) > 0.01:   # more than a point: the control failed and the snap is a blind cut
            log.warning("hyperflows: the closed loop ended at %.2f %% density for %.2f %% asked; snapping %d weights "
                        "by flow without training after it (expect lost accuracy; give the pruning stage more epochs "
                        "or a larger flow_lr)", 100 * before, 100 * keep / n, ctx.metrics["snap_flips"])
        log.info("hyperflows: density %.4f %% -> %.4f %% (closed-loop snap, %d flips)", 100 * before,
                 100 * mask_density(t >= 0 for t in ts), ctx.metrics["snap_flips"])

    def record(self, ctx: "StageContext", history: list[dict]) -> None:
        """Per-epoch curves and end-of-stage numbers into the record; figures under the run dir."""
        m = ctx.metrics
        keys = ("density", "gamma", "lambda", "flips", "flips_pruned", "flips_regrown", "expected_density",
                "test_acc", "flow_positive_frac")
        m["hyperflows_history"] = {k: [h.get(k) for h in history] for k in keys}
        last = history[-1] if history else {}
        masks = {n: t >= 0 for n, t in flow_parameters(ctx.model).items()}
        m["density"] = mask_density(masks)
        m["flips_last_epoch"] = last.get("flips")
        gammas = [h["gamma"] for h in history if "gamma" in h]
        m["gamma_final"] = gammas[-1] if gammas else None
        m["lambda_final"] = self.callback.lam if self.callback else None
        if len(history) >= self.pressure_epochs:
            m["density_prune_end"] = history[self.pressure_epochs - 1]["density"]
            m["test_acc_prune_end"] = history[self.pressure_epochs - 1].get("test_acc")
        if not self.make_figures or self.callback is None:
            return
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
        return finalize(model)
