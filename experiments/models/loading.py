"""Pretrained-weight and local-checkpoint helpers shared by the model builders."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from ..errors import ConfigError

_WRAPPER_KEYS = ("model", "state_dict")
_PREFIXES = ("module.", "_orig_mod.")     # DataParallel / DDP and torch.compile wrappers


@contextmanager
def download_guard(name: str) -> Iterator[None]:
    """Turn any failure of a pretrained-weight download inside the block into one clear ``RuntimeError``."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - any download failure means the same thing to the user
        raise RuntimeError(
            f"pretrained weights for '{name}' could not be downloaded (no internet?). Download them on a "
            f"connected machine into the torch hub cache ($TORCH_HOME) or pass model.checkpoint=<path>"
        ) from exc


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from ``path``: a raw state dict or a dict holding it under ``model``/``state_dict``.

    Wrapper prefixes (``module.``, ``_orig_mod.``) are stripped.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"checkpoint file not found: {file} (check model.checkpoint)")
    try:
        obj = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - garbage bytes, a truncated zip, a pickle of objects
        raise ConfigError(f"model.checkpoint={file} is not a readable torch checkpoint ({type(exc).__name__}); "
                         f"pass a state-dict file saved with torch.save") from None
    for key in _WRAPPER_KEYS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConfigError(f"{file} holds no state dict (expected name->tensor, or one under 'model'/'state_dict')")
    return {_strip(k): v for k, v in obj.items()}


def load_checkpoint(model: nn.Module, path: str | os.PathLike, name: str = "model") -> nn.Module:
    """Strictly load the state dict in ``path`` into ``model``; a mismatch is one line naming what differs."""
    state = load_state_dict_file(path)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    reshaped = [k for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or reshaped:
        parts = [f"{label} {len(keys)} (e.g. {keys[0]})"
                 for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape-mismatched", reshaped))
                 if keys]
        hint = " (a pruned model file? load it with experiments.checkpoint.load_model)" if reshaped else ""
        raise RuntimeError(f"checkpoint {path} does not fit model '{name}': {'; '.join(parts)}{hint}")
    model.load_state_dict(state)
    return model


def _strip(key: str) -> str:
    for prefix in _PREFIXES:
        while key.startswith(prefix):
            key = key[len(prefix):]
    return key
