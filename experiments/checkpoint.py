"""Atomic checkpoints and pickle-free model files.

``save_model`` stores the registry spec (name + kwargs), the state dict and a small table of shape
attributes (``out_channels``, ``in_features``, ``num_heads`` ...) per module. ``load_model`` builds the
model from the registry, re-shapes every tensor and attribute to the saved ones, and loads weights,
so physically pruned models (fewer channels / neurons / heads) reload with ``weights_only=True``.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import CheckpointError, CheckpointWriteError

SHAPE_ATTRS = ("in_channels", "out_channels", "in_features", "out_features", "num_features", "groups",
               "num_heads", "head_dim", "normalized_shape", "embed_dim", "hidden_features")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temp file in the same directory, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())   # mkstemp makes 0600; a shared results dir needs the umask's mode
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:   # torch reports a full disk as "[enforce fail at inline_container.cc]"
        Path(tmp).unlink(missing_ok=True)
        free = shutil.disk_usage(path.parent).free if path.parent.exists() else 0
        cause = "disk full" if (getattr(exc, "errno", None) == errno.ENOSPC or free < (1 << 20)
                                or "write" in str(exc).lower()) else f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        raise CheckpointWriteError(f"could not write {path} ({cause}); free space in {path.parent} or pass "
                                   f"results_dir=<another directory>, then re-run") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def safe_load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(weights_only=True)`` with a one-line error for missing or corrupt files."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated zip, wrong format, pickled objects
        raise CheckpointError(f"checkpoint {path} is corrupt or not a flowprune checkpoint "
                              f"({type(exc).__name__}); delete it to start over") from None


def shape_table(model: nn.Module) -> dict[str, dict]:
    table = {}
    for name, module in model.named_modules():
        attrs = {a: getattr(module, a) for a in SHAPE_ATTRS
                 if isinstance(getattr(module, a, None), (int, tuple, list))}
        if attrs:
            table[name] = {k: list(v) if isinstance(v, tuple) else v for k, v in attrs.items()}
    return table


def save_model(path: str | os.PathLike, model: nn.Module, spec: dict, meta: dict | None = None) -> Path:
    """Write ``{spec, state_dict, shapes, meta}``; ``spec`` = ``create_model`` kwargs."""
    return atomic_save({"format": "flowprune-model-v1", "spec": json.loads(json.dumps(spec)),
                        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                        "shapes": shape_table(model), "meta": json.loads(json.dumps(meta or {}))}, path)


def reshape_like(model: nn.Module, state_dict: dict[str, torch.Tensor], shapes: dict[str, dict]) -> None:
    """Give every parameter/buffer of ``model`` the shape it has in ``state_dict``; copy shape attributes."""
    for name, module in model.named_modules():
        for attr, value in shapes.get(name, {}).items():
            if hasattr(module, attr):
                setattr(module, attr, tuple(value) if isinstance(getattr(module, attr), tuple) else value)
        prefix = f"{name}." if name else ""
        for pname, p in list(module.named_parameters(recurse=False)):
            saved = state_dict.get(prefix + pname)
            if saved is not None and saved.shape != p.shape:
                setattr(module, pname, nn.Parameter(torch.empty_like(saved, device=p.device), p.requires_grad))
        for bname, b in list(module.named_buffers(recurse=False)):
            saved = state_dict.get(prefix + bname)
            if b is not None and saved is not None and saved.shape != b.shape:
                module.register_buffer(bname, torch.empty_like(saved, device=b.device))


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a model saved by ``save_model``; returns ``(model, meta)``."""
    from .models import create_model

    ckpt = safe_load(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != "flowprune-model-v1":
        raise CheckpointError(f"{path} is not a flowprune model file (save it with experiments.checkpoint.save_model)")
    model = create_model(**ckpt["spec"])
    reshape_like(model, ckpt["state_dict"], ckpt["shapes"])
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device), ckpt["meta"]


def config_key(*parts: Any) -> str:
    """Short stable hash of JSON-able parts (dense-cache key)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha1(blob).hexdigest()[:12]
