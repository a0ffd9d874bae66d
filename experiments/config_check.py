"""Validation of a composed config before any work starts: one line naming the key and the fix."""
from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

STAGE_NAMES = ("pretrain", "calibrate", "prune", "finetune", "evaluate", "route")
LOGGER_MODES = ("online", "offline", "disabled")


class ConfigError(ValueError):
    """A user-caused configuration error."""


def _get(cfg: DictConfig, key: str, default=None):
    return OmegaConf.select(cfg, key, default=default)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def validate(cfg: DictConfig) -> None:
    """Raise ``ConfigError`` for the first invalid value found."""
    target = _get(cfg, "sparsity.target")
    _require(isinstance(target, (int, float)) and 0.0 <= float(target) < 1.0,
             f"sparsity.target={target} is outside [0, 1); use sparsity=<N> (e.g. sparsity=90) or sparsity.target=0.9")
    stages = list(_get(cfg, "stages", []) or [])
    unknown = [s for s in stages if s not in STAGE_NAMES]
    _require(not unknown, f"stages={stages} has unknown stage(s) {unknown}; allowed: {list(STAGE_NAMES)}")
    order = [STAGE_NAMES.index(s) for s in stages]
    _require(order == sorted(order) and len(set(order)) == len(order),
             f"stages={stages} must be in pipeline order {list(STAGE_NAMES)} without repeats")
    for key in ("trainer.epochs", "trainer.pretrain.epochs", "trainer.finetune.epochs"):
        value = _get(cfg, key)
        if value is not None:
            _require(isinstance(value, int) and value >= 0, f"{key}={value} must be a non-negative integer")
    for key in ("trainer.batch_size", "trainer.eval_batch_size"):
        value = _get(cfg, key)
        _require(value is None or (isinstance(value, int) and value > 0), f"{key}={value} must be a positive integer")
    for key in ("trainer.pretrain.optimizer.lr", "trainer.finetune.optimizer.lr"):
        value = _get(cfg, key)
        _require(value is None or (isinstance(value, (int, float)) and value > 0), f"{key}={value} must be > 0")
    mode = _get(cfg, "logger.mode", "disabled")
    _require(mode in LOGGER_MODES, f"logger.mode={mode} is not one of {list(LOGGER_MODES)}")
    seed = _get(cfg, "seed")
    _require(isinstance(seed, int) and seed >= 0, f"seed={seed} must be a non-negative integer")
    val_size = _get(cfg, "dataset.val_size", 0)
    _require(isinstance(val_size, int) and val_size >= 0, f"dataset.val_size={val_size} must be >= 0")
    device = str(_get(cfg, "device", "auto"))
    _require(device == "auto" or device == "cpu" or device.startswith("cuda"),
             f"device={device} must be auto, cpu, cuda or cuda:<index>")
    if device.startswith("cuda"):
        import torch
        _require(torch.cuda.is_available(), f"device={device} but CUDA is not available here; use device=cpu or device=auto")
    method = _get(cfg, "method")
    _require(method is not None and "_target_" in method,
             "method has no _target_; pick one with method=<name> (see conf/method/)")
