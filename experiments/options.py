"""Typed option groups: a method's nested config dicts become frozen dataclasses, which hold the defaults.

The dataclass is the one source of a default; the YAML may repeat a value (for its comment) and a test checks that
every literal there equals the dataclass default. An unknown key or an ill-typed value is a :class:`ConfigError`
naming the key.
"""
from __future__ import annotations

import dataclasses
import typing
from typing import Any, Mapping, TypeVar

from omegaconf import DictConfig, OmegaConf

from .errors import ConfigError

T = TypeVar("T")


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """``value`` as the field's annotated type (float, int, bool, str, ``X | None``, ``int | str``)."""
    if value is None:
        if hint is type(None) or type(None) in typing.get_args(hint):
            return None
        raise ConfigError(f"{key}=null; it needs a value of type {getattr(hint, '__name__', hint)}")
    types = [t for t in (typing.get_args(hint) or (hint,)) if t is not type(None)]
    if isinstance(value, bool) and bool not in types:
        raise ConfigError(f"{key}={value}; expected {' or '.join(t.__name__ for t in types)}")
    if any(isinstance(value, t) and not (t is int and isinstance(value, bool)) for t in types):
        return float(value) if float in types and isinstance(value, int) and int not in types else value
    for t in types:
        if t in (int, float):
            try:
                out = t(value)
            except (TypeError, ValueError):
                continue
            if t is int and isinstance(value, float) and out != value:
                continue
            return out
    raise ConfigError(f"{key}={value!r}; expected {' or '.join(t.__name__ for t in types)}")


def build(cls: type[T], node: Mapping | None, key: str) -> T:
    """``cls(**node)`` with the dataclass's defaults for missing keys, values coerced to the annotated types;
    ``key`` is the node's dotted config path, for the error message."""
    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node, resolve=True)
    node = dict(node or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(node) - set(fields))
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}: unknown option; {key} has: {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    return cls(**{k: _coerce(v, hints[k], f"{key}.{k}") for k, v in node.items()})


def defaults(cls: type) -> dict[str, Any]:
    """Field name -> default of a dataclass (fields without one are left out)."""
    return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
