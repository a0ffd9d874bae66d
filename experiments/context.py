"""``StageContext``: what every stage function receives, and the shared helpers they need."""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from .checkpoint import save_model
from .data import DataBundle
from .distributed import is_main_process, shard_loader
from .measure import evaluate
from .models import create_model
from .resume import ResumeState
from .tracking import Tracker
from .train import Callback, FitResult, Trainer, create_schedule

log = logging.getLogger(__name__)


@dataclass
class StageContext:
    cfg: DictConfig
    data: DataBundle
    device: torch.device
    tracker: Tracker
    run_id: str
    results_dir: Path
    model: nn.Module | None = None
    metrics: dict = field(default_factory=dict)          # goes into the record's ``metrics``
    #: parameter counts of the model before pruning (``measure.param_counts``): the sparsity denominator
    dense_counts: dict | None = None
    dense_model: nn.Module | None = None   # a copy of the dense model, kept to time it beside the final one
    checkpoints: dict[str, Path] = field(default_factory=dict)
    fit_results: dict[str, FitResult] = field(default_factory=dict)
    #: checkpoint/resume of this run's fits (``None``: no per-epoch checkpoints)
    resume: ResumeState | None = None
    #: the stage now running (names resume checkpoints)
    stage: str = ""

    # -- paths ---------------------------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        """Per-run output folder (checkpoints, per-run figures and CSVs)."""
        path = self.results_dir / "checkpoints" / self.run_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def figure_path(self, name: str) -> Path:
        path = self.run_dir / "figures" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    # -- models --------------------------------------------------------------------------------
    @property
    def model_spec(self) -> dict:
        """``create_model`` kwargs for this run's architecture (saved with every model file)."""
        m = OmegaConf.to_container(self.cfg.model, resolve=True)
        target = {"target": m["_target_"]} if m.get("_target_") else {}
        return {"name": m["name"], **target, "num_classes": self.data.num_classes,
                "in_channels": self.data.in_channels, "image_size": self.data.image_size, **(m.get("kwargs") or {})}

    def build_model(self, pretrained: bool | None = None, checkpoint: str | None = None) -> nn.Module:
        m = self.cfg.model
        model = create_model(**self.model_spec,
                             pretrained=bool(m.get("pretrained", False) if pretrained is None else pretrained),
                             checkpoint=m.get("checkpoint") if checkpoint is None else checkpoint)
        return self.prepare(model)

    def prepare(self, model: nn.Module) -> nn.Module:
        model = model.to(self.device)
        if self.device.type == "cuda" and self.cfg.trainer.get("channels_last", True):
            model = model.to(memory_format=torch.channels_last)
        return model

    def save_model(self, name: str, model: nn.Module, meta: dict | None = None) -> Path:
        """Write a model file under the run dir (rank 0 only under DDP; other ranks get the path)."""
        path = self.run_dir / f"{name}.pt"
        if is_main_process():
            save_model(path, model, self.model_spec, meta)
        self.checkpoints[name] = path
        return path

    # -- training / evaluation -------------------------------------------------------------------
    def recipe(self, phase: str) -> DictConfig:
        """The trainer recipe of ``phase`` (``pretrain`` or ``finetune``) merged over trainer defaults."""
        tr = self.cfg.trainer
        return tr[phase] if phase in tr else tr.finetune

    def loaders(self, batch_size: int | None = None) -> tuple[Any, dict]:
        tr = self.cfg.trainer
        train = shard_loader(self.data.loader("train", batch_size or tr.batch_size, train=True))
        evals = {split: self.data.loader(split, tr.eval_batch_size)
                 for split in ("val", "test") if self.data.split_size(split) > 0}
        return train, evals

    def fit(self, model: nn.Module, callbacks: Sequence[Callback] = (), phase: str = "finetune",
            epochs: int | None = None, schedule_phases: list[dict] | None = None,
            optimizer: dict | None = None, label_smoothing: float | None = None,
            recipe: str | None = None) -> FitResult:
        """Train with the ``phase`` recipe (or the named ``recipe``: a from-scratch sparse method trains
        with ``pretrain``'s optimizer and schedule); methods override epochs, LR phases or optimizer."""
        recipe_name = recipe or ("pretrain" if phase == "pretrain" else "finetune")
        recipe = self.recipe(recipe_name)
        lr_key = ("method.lr" if "lr" in (optimizer or {}) else
                  f"trainer.{recipe_name if recipe_name in self.cfg.trainer else 'finetune'}.optimizer.lr")
        tr = self.cfg.trainer
        opt = OmegaConf.to_container(recipe.optimizer, resolve=True)
        opt.update(optimizer or {})
        n_epochs = int(recipe.epochs if epochs is None else epochs)
        sched_cfg = OmegaConf.to_container(recipe.schedule, resolve=True)
        schedule = create_schedule(epochs=n_epochs, lr=opt["lr"], phases=schedule_phases, **sched_cfg)
        train, evals = self.loaders()
        trainer = Trainer(model, train, evals, schedule=schedule, optimizer=opt,
                          label_smoothing=recipe.label_smoothing if label_smoothing is None else label_smoothing,
                          callbacks=callbacks, device=self.device, amp=tr.amp, grad_clip=tr.grad_clip,
                          eval_every=tr.eval_every, progress=tr.progress, phase=phase,
                          log_fn=self.tracker.log, max_steps_per_epoch=tr.max_steps_per_epoch,
                          compile=bool(tr.get("compile", False)), lr_key=lr_key)
        if self.resume is not None:
            self.resume.attach(trainer, phase)  # continue from this fit's checkpoint; save one every epoch
        result = trainer.fit()
        self.fit_results[phase] = result
        return result

    def evaluate(self, model: nn.Module, split: str = "test") -> dict:
        loader = self.data.loader(split, self.cfg.trainer.eval_batch_size)
        return evaluate(model, loader, self.device)

    def copy_model(self, model: nn.Module) -> nn.Module:
        return copy.deepcopy(model)
