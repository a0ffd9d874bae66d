"""Name -> builder registry and the single ``create_model`` entry point (timm-style)."""
from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from .loading import load_checkpoint

log = logging.getLogger(__name__)

Builder = Callable[..., nn.Module]
_POSITIONAL = ("num_classes", "in_channels", "image_size")


@dataclass(frozen=True)
class ModelEntry:
    """A registered builder; ``has_pretrained`` iff the builder takes a ``pretrained`` argument."""

    name: str
    fn: Builder
    kwargs: tuple[str, ...]          # architecture kwargs the builder accepts
    has_pretrained: bool


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str) -> Callable[[Builder], Builder]:
    """Register ``fn(num_classes, in_channels, image_size, **kwargs) -> nn.Module`` under ``name``.

    A builder that also takes ``pretrained: bool`` is listed as having pretrained weights.
    """

    def decorator(fn: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"model '{name}' is already registered (by {_REGISTRY[name].fn.__module__})")
        params = inspect.signature(fn).parameters
        missing = [p for p in _POSITIONAL if p not in params]
        if missing:
            raise TypeError(f"builder for '{name}' must accept {', '.join(_POSITIONAL)} (missing {missing})")
        kwargs = tuple(p for p in params if p not in _POSITIONAL and p != "pretrained")
        _REGISTRY[name] = ModelEntry(name, fn, kwargs, "pretrained" in params)
        return fn

    return decorator


def list_models(pretrained: bool = False) -> list[str]:
    """Sorted registered names; with ``pretrained=True`` only those that have pretrained weights."""
    return sorted(n for n, e in _REGISTRY.items() if e.has_pretrained or not pretrained)


def get_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; ``ValueError`` (one line, listing the choices) if unknown."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model '{name}'; available: {', '.join(list_models())}") from None


def create_model(name: str, num_classes: int, in_channels: int, image_size: int,
                 pretrained: bool = False, checkpoint: str | None = None, **kwargs: Any) -> nn.Module:
    """Build registered model ``name``; optionally start from pretrained weights or a local checkpoint.

    ``checkpoint`` (a state-dict file) takes precedence: when given, pretrained weights are not fetched.
    The result carries ``classifier_name`` and ``stem_name`` (qualified module names).
    """
    entry = get_entry(name)
    unknown = sorted(set(kwargs) - set(entry.kwargs))
    if unknown:
        accepted = ", ".join(entry.kwargs) or "none"
        raise TypeError(f"model '{name}' got unexpected keyword argument(s) {', '.join(unknown)}; accepted: {accepted}")
    if pretrained and not entry.has_pretrained:
        raise ValueError(f"model '{name}' has no pretrained weights; set model.pretrained=false "
                         f"or pass model.checkpoint=<path> (models with weights: {', '.join(list_models(True))})")
    if entry.has_pretrained:
        if pretrained and checkpoint:
            log.info("model '%s': checkpoint %s given, not fetching pretrained weights", name, checkpoint)
        kwargs["pretrained"] = bool(pretrained) and not checkpoint
    model = entry.fn(num_classes=int(num_classes), in_channels=int(in_channels), image_size=int(image_size), **kwargs)
    for attr in ("classifier_name", "stem_name"):
        qualified = getattr(model, attr, None)
        if not isinstance(qualified, str):
            raise TypeError(f"builder for '{name}' must set model.{attr}")
        model.get_submodule(qualified)   # fails loudly if the name does not resolve
    if checkpoint:
        load_checkpoint(model, checkpoint, name)
    return model
