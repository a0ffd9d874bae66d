"""The training loop shared by every stage (dense pretraining, fine-tuning, Hyperflows' prune/regrow).

Per epoch: set LRs from the schedules, train with progress bar, evaluate val and test, log one line
and the epoch's metrics, call callbacks. Peak (best) and final accuracies are tracked; the test
accuracy at the best *validation* epoch is kept too, so a result can be reported without choosing
on the test split.
"""
from __future__ import annotations

import logging
import math
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..errors import NonFiniteLoss, TrainingOutOfMemory
from ..measure import evaluate
from ..resume import Preempted, preemption_requested, rng_state, set_rng_state
from .callbacks import Callback, ExtraOptimizer
from .optim import create_optimizer
from .schedule import LRSchedule

log = logging.getLogger(__name__)


def progress_on_terminal() -> bool:
    """tqdm's bar only where someone watches it: off a TTY (SLURM, nohup, CI) its carriage-return frames would
    fill the log file."""
    return sys.stderr.isatty()


class Heartbeat:
    """Off a TTY, a long epoch logs "x % of epoch" at most every ``every`` seconds (none for short epochs)."""

    def __init__(self, desc: str, total: int | None, every: float = 60.0):
        self.desc, self.total, self.every = desc, total, every
        self.next = time.perf_counter() + every

    def __call__(self, step: int) -> None:
        now = time.perf_counter()
        if now >= self.next and self.total:
            self.next = now + self.every
            log.info("[%s] %d %% of epoch (%d/%d steps)", self.desc, 100 * step // self.total, step, self.total)


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA OOM (``torch.OutOfMemoryError``) or the CPU allocator's "can't allocate memory"."""
    oom_type = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", ())
    if oom_type and isinstance(exc, oom_type):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


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
                 step_offset: int = 0, max_steps_per_epoch: int | None = None, compile: bool = False,
                 checkpoint_fn: Callable[["Trainer"], None] | None = None, lr_key: str = "the learning rate",
                 finite_check_every: int = 8):
        self.model = model
        #: what the training step calls: ``model`` itself, wrapped in DDP under torchrun, compiled on request
        self.forward_model: nn.Module = model
        #: called after every epoch (and at a preemption step) with the trainer; writes the resume checkpoint
        self.checkpoint_fn = checkpoint_fn
        self._partial: dict | None = None   # position inside an epoch interrupted by preemption
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
        #: the config key of this fit's weight LR, named by the divergence hint
        self.lr_key = lr_key
        #: steps between checks that the loss is finite (one host sync each), so a divergence stops early
        self.finite_check_every = max(int(finite_check_every), 1)
        self.epoch = 0            # epochs completed
        self.global_step = step_offset
        self.result = FitResult()
        self.last_loss: torch.Tensor | None = None
        #: the training step runs through ``torch.compile`` (a method's in-backward updates are then not used)
        self.compile = bool(compile)
        self.extras: list[ExtraOptimizer] = []
        for cb in self.callbacks:
            self.extras.extend(cb.optimizers(self))
        excluded = {id(p) for e in self.extras for g in e.optimizer.param_groups for p in g["params"]}
        opt_cfg = dict(optimizer)
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad and id(p) not in excluded]
        self.optimizer = create_optimizer(named, **opt_cfg)
        self.base_lr = float(opt_cfg.get("lr", 0.1))
        from ..distributed import is_distributed, wrap_ddp

        if is_distributed():
            self.forward_model = wrap_ddp(model, self.device)
        if compile:
            self.forward_model = torch.compile(self.forward_model)

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps in one epoch (``len(train_loader)`` capped by ``max_steps_per_epoch``)."""
        n = len(self.train_loader)
        return min(n, int(self.max_steps_per_epoch)) if self.max_steps_per_epoch else n

    # -- state (checkpoint/resume) -------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "global_step": self.global_step, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "extras": [e.optimizer.state_dict() for e in self.extras],
                "callbacks": [cb.state_dict() for cb in self.callbacks],
                "result": self.result.__dict__.copy(),
                "loader": self.train_loader.generator_state() if hasattr(self.train_loader, "generator_state") else None,
                "rng": rng_state(), "partial": self._partial}

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
        if state.get("rng") is not None:
            set_rng_state(state["rng"])
        self._partial = state.get("partial")

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
            logits = self.forward_model(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=self.label_smoothing)
        return loss, logits

    def train_epoch(self, epoch: int) -> dict:
        self.forward_model.train()
        self.model.train()
        optimizers = [self.optimizer] + [e.optimizer for e in self.extras if not e.in_backward]
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen, skip = 0, 0
        has_state = hasattr(self.train_loader, "generator_state")
        partial, self._partial = self._partial, None
        if partial is not None and partial["epoch"] == epoch:  # resume inside this epoch
            skip, seen = int(partial["step"]), int(partial["seen"])
            loss_sum += partial["loss_sum"].to(self.device)
            correct += partial["correct"].to(self.device)
            if has_state and partial.get("loader") is not None:
                self.train_loader.set_generator_state(partial["loader"])
        epoch_loader_state = self.train_loader.generator_state() if has_state else None
        total = len(self.train_loader) if hasattr(self.train_loader, "__len__") else None
        if self.max_steps_per_epoch and total:
            total = min(total, self.max_steps_per_epoch)
        desc = f"{self.phase} {epoch + 1}/{self.schedule.epochs}"
        bar = tqdm(self.train_loader, total=total, desc=desc, leave=False, mininterval=0.5,
                   disable=not (self.progress and progress_on_terminal()))
        beat = Heartbeat(desc, total) if self.progress and not progress_on_terminal() else None
        for step, (x, y) in enumerate(bar):
            if beat is not None:
                beat(step)
            if self.max_steps_per_epoch and step >= self.max_steps_per_epoch:
                break
            if step < skip:  # batches done before the preemption: drawn (same RNG use), not trained
                continue
            if x.device != self.device:
                x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            try:
                loss, logits = self.compute_loss(x, y)
                data_loss = loss.detach()
                for cb in self.callbacks:
                    extra = cb.extra_loss(self)
                    if extra is not None:
                        loss = loss + extra
                self.last_loss = loss
                loss.backward()
            except RuntimeError as exc:
                if not is_out_of_memory(exc):
                    raise
                bs = getattr(self.train_loader, "batch_size", None) or y.numel()
                raise TrainingOutOfMemory(
                    f"out of memory on {self.device} in {self.phase} epoch {epoch + 1} with trainer.batch_size={bs}; "
                    f"lower it (e.g. trainer.batch_size={max(bs // 2, 1)}) or keep trainer.amp=true") from None
            for cb in self.callbacks:
                cb.on_after_backward(self)
            if self.grad_clip:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            for opt in optimizers:
                opt.step()
            for cb in self.callbacks:
                cb.on_after_step(self)
            if step % self.finite_check_every == 0 and not bool(torch.isfinite(data_loss)):
                self.diverged(epoch, step)
            loss_sum += data_loss * y.numel()
            correct += (logits.detach().argmax(1) == y).sum()
            seen += y.numel()
            self.global_step += 1
            if self._should_stop():
                self._partial = {"epoch": epoch, "step": step + 1, "seen": seen, "loader": epoch_loader_state,
                                 "loss_sum": loss_sum.detach().cpu(), "correct": correct.detach().cpu()}
                if self.checkpoint_fn is not None:
                    self.checkpoint_fn(self)
                bar.close()
                raise Preempted(f"preempted in {self.phase} epoch {epoch + 1} step {step + 1}; checkpoint written")
        bar.close()
        train_loss = (loss_sum / max(seen, 1)).item()
        if not math.isfinite(train_loss):
            self.diverged(epoch, None)
        return {"train_loss": train_loss, "train_acc": 100.0 * correct.item() / max(seen, 1)}

    def diverged(self, epoch: int, step: int | None):
        at = f" step {step + 1}" if step is not None else ""
        raise NonFiniteLoss(f"non-finite training loss in {self.phase} epoch {epoch + 1}{at}; lower {self.lr_key} "
                            f"(now {self.base_lr:g}) or check the method's loss terms")

    def _should_stop(self) -> bool:
        """A preemption signal was caught; under DDP every rank agrees (checked every 16 steps there)."""
        from ..distributed import all_reduce_, is_distributed

        if not is_distributed():
            return preemption_requested()
        if self.global_step % 16:
            return False
        flag = torch.tensor([float(preemption_requested())], device=self.device)
        return bool(all_reduce_(flag, "max").item())

    def fit(self) -> FitResult:
        t0 = time.perf_counter() - self.result.seconds
        resumed_epoch = self._partial.get("epoch") if self._partial is not None else None
        if self.epoch == 0 and resumed_epoch is None:
            for cb in self.callbacks:
                cb.on_fit_start(self)
        for epoch in range(self.epoch, self.schedule.epochs):
            lr = self.set_lr(epoch)
            if epoch != resumed_epoch:  # a resumed epoch already ran its start hooks before preemption
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
            if self.checkpoint_fn is not None:
                self.checkpoint_fn(self)
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
        parts += [f"density {100 * m['density']:.4g} %"] if "density" in m else []
        parts += [f"gamma {m['gamma']:.4g}"] if "gamma" in m else []
        parts.append(f"{m['epoch_seconds']:.1f}s")
        log.info(" | ".join(parts))
        if self.log_fn is not None:
            scalars = {f"{self.phase}/{k}": v for k, v in m.items() if isinstance(v, (int, float))}
            self.log_fn(scalars, None)
