"""The training loop shared by every stage (dense pretraining, fine-tuning, Hyperflows' prune/regrow).

Per epoch: set LRs from the schedules, train with progress bar, evaluate val and test, log one line
and the epoch's metrics, call callbacks. Peak (best) and final accuracies are tracked; the test
accuracy at the best *validation* epoch is kept too, so a result can be reported without choosing
on the test split.
"""
from __future__ import annotations

import logging
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..measure import evaluate
from .callbacks import Callback, ExtraOptimizer
from .optim import create_optimizer
from .schedule import LRSchedule

log = logging.getLogger(__name__)


class NonFiniteLoss(FloatingPointError):
    """Training produced NaN/inf; the message names the epoch, step and the knob to turn."""


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)
    best_test_acc: float = float("nan")
    final_test_acc: float = float("nan")
    best_val_acc: float = float("nan")
    test_at_best_val: float = float("nan")
    seconds: float = 0.0


class Trainer:
    """Trains ``model`` for ``schedule.epochs`` epochs with the main optimizer plus callbacks' extras."""

    def __init__(self, model: nn.Module, train_loader: Iterable, eval_loaders: dict[str, Iterable],
                 schedule: LRSchedule, optimizer: dict, label_smoothing: float = 0.0,
                 callbacks: Sequence[Callback] = (), device: torch.device | str = "cpu",
                 amp: bool = True, grad_clip: float | None = None, eval_every: int = 1, progress: bool = True,
                 log_fn: Callable[[dict, int], None] | None = None, phase: str = "train",
                 step_offset: int = 0, max_steps_per_epoch: int | None = None):
        self.model = model
        self.train_loader = train_loader
        self.eval_loaders = {k: v for k, v in eval_loaders.items() if v is not None}
        self.schedule = schedule
        self.label_smoothing = float(label_smoothing)
        self.callbacks = list(callbacks)
        self.device = torch.device(device)
        self.amp_dtype = torch.bfloat16 if (amp and self.device.type == "cuda") else None
        self.grad_clip = grad_clip
        self.eval_every = max(int(eval_every), 1)
        self.progress = progress
        self.log_fn = log_fn
        self.phase = phase
        self.max_steps_per_epoch = max_steps_per_epoch
        self.epoch = 0            # epochs completed
        self.global_step = step_offset
        self.result = FitResult()
        self.last_loss: torch.Tensor | None = None
        self.extras: list[ExtraOptimizer] = []
        for cb in self.callbacks:
            self.extras.extend(cb.optimizers(self))
        excluded = {id(p) for e in self.extras for g in e.optimizer.param_groups for p in g["params"]}
        opt_cfg = dict(optimizer)
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad and id(p) not in excluded]
        self.optimizer = create_optimizer(named, **opt_cfg)
        self.base_lr = float(opt_cfg.get("lr", 0.1))

    # -- state (checkpoint/resume) -------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "global_step": self.global_step, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "extras": [e.optimizer.state_dict() for e in self.extras],
                "callbacks": [cb.state_dict() for cb in self.callbacks],
                "result": self.result.__dict__.copy(),
                "loader": self.train_loader.generator_state() if hasattr(self.train_loader, "generator_state") else None}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        for e, s in zip(self.extras, state["extras"]):
            e.optimizer.load_state_dict(s)
        for cb, s in zip(self.callbacks, state["callbacks"]):
            cb.load_state_dict(s)
        self.result = FitResult(**state["result"])
        self.epoch, self.global_step = state["epoch"], state["global_step"]
        if state.get("loader") is not None and hasattr(self.train_loader, "set_generator_state"):
            self.train_loader.set_generator_state(state["loader"])

    # -- loop --------------------------------------------------------------------------------------
    def set_lr(self, epoch: int) -> float:
        lr = self.schedule.lr_at(epoch)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        for e in self.extras:
            if e.schedule is not None:
                for g in e.optimizer.param_groups:
                    g["lr"] = e.schedule.lr_at(epoch)
        return lr

    def compute_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ctx = torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype else nullcontext()
        with ctx:
            logits = self.model(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=self.label_smoothing)
        return loss, logits

    def train_epoch(self, epoch: int) -> dict:
        self.model.train()
        optimizers = [self.optimizer] + [e.optimizer for e in self.extras]
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        total = len(self.train_loader) if hasattr(self.train_loader, "__len__") else None
        if self.max_steps_per_epoch and total:
            total = min(total, self.max_steps_per_epoch)
        bar = tqdm(self.train_loader, total=total, desc=f"{self.phase} {epoch + 1}/{self.schedule.epochs}",
                   leave=False, disable=not self.progress, mininterval=0.5)
        for step, (x, y) in enumerate(bar):
            if self.max_steps_per_epoch and step >= self.max_steps_per_epoch:
                break
            if x.device != self.device:
                x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            loss, logits = self.compute_loss(x, y)
            data_loss = loss.detach()
            for cb in self.callbacks:
                extra = cb.extra_loss(self)
                if extra is not None:
                    loss = loss + extra
            self.last_loss = loss
            loss.backward()
            for cb in self.callbacks:
                cb.on_after_backward(self)
            if self.grad_clip:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            for opt in optimizers:
                opt.step()
            for cb in self.callbacks:
                cb.on_after_step(self)
            loss_sum += data_loss * y.numel()
            correct += (logits.detach().argmax(1) == y).sum()
            seen += y.numel()
            self.global_step += 1
        bar.close()
        train_loss = (loss_sum / max(seen, 1)).item()
        if not math.isfinite(train_loss):
            raise NonFiniteLoss(f"non-finite training loss in {self.phase} epoch {epoch + 1}; "
                                f"lower trainer.optimizer.lr (now {self.base_lr:g}) or check the method's loss terms")
        return {"train_loss": train_loss, "train_acc": 100.0 * correct.item() / max(seen, 1)}

    def fit(self) -> FitResult:
        t0 = time.perf_counter() - self.result.seconds
        if self.epoch == 0:
            for cb in self.callbacks:
                cb.on_fit_start(self)
        for epoch in range(self.epoch, self.schedule.epochs):
            lr = self.set_lr(epoch)
            for cb in self.callbacks:
                cb.on_epoch_start(self, epoch)
            t_epoch = time.perf_counter()
            metrics = {"epoch": epoch + 1, "lr": lr, **self.train_epoch(epoch)}
            metrics["epoch_seconds"] = time.perf_counter() - t_epoch
            if (epoch + 1) % self.eval_every == 0 or epoch + 1 == self.schedule.epochs:
                for split, loader in self.eval_loaders.items():
                    for k, v in evaluate(self.model, loader, self.device, self.amp_dtype).items():
                        metrics[f"{split}_{k}"] = v
            for cb in self.callbacks:
                extra = cb.on_epoch_end(self, epoch, metrics)
                if extra:
                    metrics.update(extra)
            self._update_result(metrics)
            self.epoch = epoch + 1
            self.result.seconds = time.perf_counter() - t0
            self._log(metrics)
        for cb in self.callbacks:
            cb.on_fit_end(self)
        return self.result

    def _update_result(self, m: dict) -> None:
        r = self.result
        r.history.append(m)
        if "test_acc" in m:
            r.final_test_acc = m["test_acc"]
            if not r.best_test_acc >= m["test_acc"]:
                r.best_test_acc = m["test_acc"]
        if "val_acc" in m and not r.best_val_acc >= m["val_acc"]:
            r.best_val_acc = m["val_acc"]
            r.test_at_best_val = m.get("test_acc", float("nan"))

    def _log(self, m: dict) -> None:
        parts = [f"[{self.phase}] epoch {m['epoch']}/{self.schedule.epochs}", f"lr {m['lr']:.3g}",
                 f"loss {m['train_loss']:.4f}"]
        parts += [f"{k} {m[k]:.2f}" for k in ("val_acc", "test_acc") if k in m]
        parts += [f"{k} {m[k]:.4g}" for k in ("density", "gamma") if k in m]
        parts.append(f"{m['epoch_seconds']:.1f}s")
        log.info(" | ".join(parts))
        if self.log_fn is not None:
            scalars = {f"{self.phase}/{k}": v for k, v in m.items() if isinstance(v, (int, float))}
            self.log_fn(scalars, None)
