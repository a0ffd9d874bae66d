"""Name -> builder registry and the single ``create_model`` entry point (timm-style).

A builder outside the project plugs in by its dotted path (``model._target_`` in a config, ``target=`` here):
it is called and checked exactly like a registered one.
"""
from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from ..config_check import import_target
from ..errors import ConfigError
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
    any_kwargs: bool = False         # the builder takes **kwargs: every model.kwargs key is passed through


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str) -> Callable[[Builder], Builder]:
    """Register ``fn(num_classes, in_channels, image_size, **kwargs) -> nn.Module`` under ``name``.

    A builder that also takes ``pretrained: bool`` is listed as having pretrained weights.
    """

    def decorator(fn: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"model '{name}' is already registered (by {_REGISTRY[name].fn.__module__})")
        _REGISTRY[name] = _entry(name, fn)
        return fn

    return decorator


def _entry(name: str, fn: Builder) -> ModelEntry:
    params = inspect.signature(fn).parameters
    missing = [p for p in _POSITIONAL if p not in params]
    if missing:
        raise TypeError(f"builder for '{name}' must accept {', '.join(_POSITIONAL)} (missing {missing})")
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = tuple(p for p, v in params.items() if p not in _POSITIONAL and p != "pretrained"
                   and v.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL))
    return ModelEntry(name, fn, kwargs, "pretrained" in params, takes_any)


def list_models(pretrained: bool = False) -> list[str]:
    """Sorted registered names; with ``pretrained=True`` only those that have pretrained weights."""
    return sorted(n for n, e in _REGISTRY.items() if e.has_pretrained or not pretrained)


def get_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; ``ValueError`` (one line, listing the choices) if unknown."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown model '{name}'; available: {', '.join(list_models())}") from None


def create_model(name: str, num_classes: int, in_channels: int, image_size: int,
                 pretrained: bool = False, checkpoint: str | None = None, target: str | None = None,
                 **kwargs: Any) -> nn.Module:
    """Build registered model ``name`` (or the builder at dotted path ``target``, called the same way);
    optionally start from pretrained weights or a local checkpoint.

    ``checkpoint`` (a state-dict file) takes precedence: when given, pretrained weights are not fetched.
    The result carries ``classifier_name`` and ``stem_name`` (qualified module names); a plug-in builder that
    does not set them gets its first conv/linear layer as stem and its last linear layer as classifier.
    """
    entry = _entry(name, import_target(target, "model._target_")) if target else get_entry(name)
    unknown = sorted(set(kwargs) - set(entry.kwargs))
    if unknown and not entry.any_kwargs:
        accepted = ", ".join(entry.kwargs) or "none"
        raise ConfigError(f"model '{name}' got unexpected keyword argument(s) {', '.join(unknown)}; accepted: {accepted}")
    if pretrained and not entry.has_pretrained:
        raise ConfigError(f"model '{name}' has no pretrained weights; set model.pretrained=false "
                         f"or pass model.checkpoint=<path> (models with weights: {', '.join(list_models(True))})")
    if entry.has_pretrained:
        if pretrained and checkpoint:
            log.info("model '%s': checkpoint %s given, not fetching pretrained weights", name, checkpoint)
        kwargs["pretrained"] = bool(pretrained) and not checkpoint
    model = entry.fn(num_classes=int(num_classes), in_channels=int(in_channels), image_size=int(image_size), **kwargs)
    if not isinstance(model, nn.Module):
        raise TypeError(f"builder for '{name}' ({target or entry.fn.__module__}) returned "
                        f"{type(model).__name__}, not an nn.Module")
    if target:
        _name_stem_and_classifier(model)
    for attr in ("classifier_name", "stem_name"):
        qualified = getattr(model, attr, None)
        if not isinstance(qualified, str):
            raise TypeError(f"builder for '{name}' must set model.{attr}")
        model.get_submodule(qualified)   # fails loudly if the name does not resolve
    if checkpoint:
        load_checkpoint(model, checkpoint, name)
    return model


def _name_stem_and_classifier(model: nn.Module) -> None:
    """Plug-in models: ``stem_name`` = first Conv2d/Linear, ``classifier_name`` = last Linear, unless set."""
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    linear = [n for n, m in layers if isinstance(m, nn.Linear)]
    if getattr(model, "stem_name", None) is None and layers:
        model.stem_name = layers[0][0]
    if getattr(model, "classifier_name", None) is None and linear:
        model.classifier_name = linear[-1]
