"""Validation of a composed config before any work starts: one line naming the key and the fix."""
from __future__ import annotations

import importlib
import math
from pathlib import Path
from typing import Callable

from omegaconf import DictConfig, ListConfig, OmegaConf

from .errors import ConfigError

STAGE_NAMES = ("pretrain", "calibrate", "prune", "finetune", "evaluate", "route")
LOGGER_MODES = ("online", "offline", "disabled")


def _get(cfg: DictConfig, key: str, default=None):
    return OmegaConf.select(cfg, key, default=default)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


#: learning-rate keys that may be 0 (an annealed end value, an off switch)
LR_MAY_BE_ZERO = ("final_lr", "trajectory_lr")


def learning_rates(node, prefix: str) -> list[tuple[str, object]]:
    """Every (dotted key, value) under ``node`` whose key names a learning rate (``lr``, ``*_lr``, ``lr_*``)."""
    out = []
    if isinstance(node, DictConfig):
        for k in node.keys():
            v = OmegaConf.select(node, str(k), default=None)
            key = f"{prefix}.{k}"
            if isinstance(v, (DictConfig, ListConfig)):
                out += learning_rates(v, key)
            elif str(k) == "lr" or str(k).endswith("_lr") or str(k).startswith("lr_"):
                out.append((key, v))
    return out


def check_learning_rates(cfg: DictConfig) -> None:
    for key, v in learning_rates(cfg.get("trainer"), "trainer") + learning_rates(cfg.get("method"), "method"):
        if v is None:
            continue
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        floor_ok = ok and (v >= 0 if key.rsplit(".", 1)[-1] in LR_MAY_BE_ZERO or key.endswith("_end") else v > 0)
        _require(floor_ok, f"{key}={v} must be a finite number > 0{' (or 0)' if key.endswith(LR_MAY_BE_ZERO) else ''}")


def import_target(target: str, key: str) -> Callable:
    """The callable at dotted path ``target`` (a config's ``_target_``); one ConfigError line naming ``key``
    when it cannot be imported."""
    module, _, attr = target.rpartition(".")
    try:
        fn = getattr(importlib.import_module(module), attr) if module else None
    except ImportError as exc:
        raise ConfigError(f"{key}={target}: cannot import {module!r} ({exc}); put the package that holds it on "
                          f"PYTHONPATH") from None
    except AttributeError:
        fn = None
    if not callable(fn):
        raise ConfigError(f"{key}={target}: no callable {attr!r} in module {module!r}; name a function as "
                          f"<package>.<module>.<function>")
    return fn


def validate(cfg: DictConfig) -> None:
    """Raise ``ConfigError`` for the first invalid value found."""
    target = _get(cfg, "sparsity.target")
    _require(isinstance(target, (int, float)) and 0.0 <= float(target) < 1.0,
             f"sparsity.target={target} is outside [0, 1); use sparsity=<N> (e.g. sparsity=90) or sparsity.target=0.9")
    raw_stages = _get(cfg, "stages", [])
    _require(not isinstance(raw_stages, str), f"stages={raw_stages} is a string; pass a list: stages=[{raw_stages}]")
    stages = list(raw_stages or [])
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
    check_learning_rates(cfg)
    for key in ("dataset.train_subset", "dataset.test_subset"):
        value = _get(cfg, key)
        _require(value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0),
                 f"{key}={value} must be a positive number of images, or null for the whole split")
    for key in ("data_root", "dataset.root"):
        value = _get(cfg, key)
        _require(value is None or not Path(str(value)).expanduser().is_file(),
                 f"{key}={value} is a file; pass the directory that holds the dataset")
    for key in ("model._target_", "dataset._target_"):   # a plug-in builder from outside the project
        value = _get(cfg, key)
        if value is not None:
            import_target(str(value), key)
    ckpt = _get(cfg, "model.checkpoint")
    _require(ckpt is None or Path(str(ckpt)).expanduser().is_file(),
             f"model.checkpoint={ckpt} does not exist; pass a state-dict file or model.checkpoint=null")
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
    from .measure import channel_block
    channel_block(_get(cfg, "measure.channel_block", "auto"))
    batches = _get(cfg, "measure.speedup_batches", [])
    _require(all(isinstance(b, int) and b >= 1 for b in batches),
             f"measure.speedup_batches={list(batches)} must be batch sizes >= 1, e.g. [1, 16, 64, 256]")
    from .measure import FORMS
    forms = list(_get(cfg, "measure.speedup_forms", FORMS))
    _require(bool(forms) and all(f in FORMS for f in forms),
             f"measure.speedup_forms={forms} must be a non-empty subset of {list(FORMS)}")
    export = _get(cfg, "measure.export")
    if export is not None:
        from .export import FORMATS, _require as require_package
        _require(export in FORMATS, f"measure.export={export} is not one of {list(FORMATS)} (or null)")
        require_package("onnx")
        require_package("onnxruntime")
    method = _get(cfg, "method")
    _require(method is not None and "_target_" in method,
             "method has no _target_; pick one with method=<name> (see conf/method/)")
