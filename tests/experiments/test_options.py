"""Option dataclasses: the one source of defaults. Every literal a method/scorer YAML sets equals its Python
default (the YAML may repeat a default for its comment, never contradict it); unknown keys and bad types are
one-line config errors."""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
import typing
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from experiments import options
from experiments.errors import ConfigError
from hyperflows.options import Control, Pressure, WeightRecipe

ROOT = Path(__file__).resolve().parents[2]
#: base configs of a group (presets with a ``defaults`` list override their parent on purpose)
BASE_CONFIGS = [p for d in ("method", "scorer") for p in sorted((ROOT / "conf" / d).glob("*.yaml"))
                if "defaults" not in OmegaConf.load(p)]


def target_of(path: str):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def option_class(hint) -> type | None:
    return next((t for t in typing.get_args(hint) or (hint,) if dataclasses.is_dataclass(t)), None)


def same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) \
            and not isinstance(b, bool) and math.isclose(a, b, rel_tol=1e-12)
    return type(a) is type(b) and a == b


def literal(value) -> bool:
    return not (isinstance(value, str) and "${" in value)


def parameters(cls) -> tuple[dict, dict]:
    """Constructor parameters and type hints of ``cls``, following ``**kwargs`` up to the base classes."""
    params, hints = {}, {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        own = inspect.signature(klass.__init__).parameters
        params = {**{k: v for k, v in own.items() if v.kind not in (v.VAR_KEYWORD, v.VAR_POSITIONAL)}, **params}
        hints = {**typing.get_type_hints(klass.__init__), **hints}
        if not any(v.kind is v.VAR_KEYWORD for v in own.values()):
            break
    return params, hints


def mismatches(path: Path) -> list[str]:
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    cls = target_of(raw.pop("_target_"))
    params, hints = parameters(cls)
    out = []
    for key, value in raw.items():
        if key not in params:
            out.append(f"{path.name}: {key} is not an argument of {cls.__name__}")
            continue
        group = option_class(hints.get(key))
        if group is not None and isinstance(value, dict):
            want = options.defaults(group)
            out += [f"{path.name}: {key}.{k}={v!r}, {group.__name__} default {want.get(k)!r}"
                    for k, v in value.items() if literal(v) and not same(v, want.get(k, object()))]
            continue
        default = params[key].default
        if key == "name" and default is None:
            default = getattr(cls, "name", None)   # a scorer's registered name (the YAML's name must match it)
        if group is None and literal(value) and default is not inspect.Parameter.empty \
                and not same(value, default) and not (value == [] and default is None):
            out.append(f"{path.name}: {key}={value!r}, {cls.__name__} default {default!r}")
    return out


def test_every_literal_in_a_base_config_equals_the_python_default():
    assert len(BASE_CONFIGS) >= 15
    bad = [m for p in BASE_CONFIGS for m in mismatches(p)]
    assert not bad, "\n".join(bad)


def test_the_check_sees_a_contradicting_default(tmp_path):
    p = tmp_path / "hf.yaml"
    p.write_text("_target_: hyperflows.method.Hyperflows\nt_init: 0.3\nscheduler: {regrowth_offset: 0.885}\n")
    assert len(mismatches(p)) == 2


def test_build_fills_defaults_and_coerces_types():
    c = options.build(Control, {"step_size": 1, "updates_per_epoch": 3}, "method.scheduler")
    assert c.step_size == 1.0 and isinstance(c.step_size, float) and c.updates_per_epoch == 3
    assert c.regrowth_offset == Control().regrowth_offset
    assert options.build(Pressure, None, "method.pressure") == Pressure()
    assert options.build(Pressure, {"threshold": None}, "method.pressure").threshold is None


@pytest.mark.parametrize("node, match", [
    ({"regrowth_ofset": 0.8}, r"method.scheduler.regrowth_ofset: unknown option; method.scheduler has: control"),
    ({"step_size": "fast"}, r"method.scheduler.step_size='fast'; expected float"),
    ({"updates_per_epoch": 2.5}, r"method.scheduler.updates_per_epoch=2.5; expected int or str"),
    ({"control": "pid"}, r"method.scheduler.control='pid'; use closed_loop or open_loop"),
    ({"step_size": None}, r"method.scheduler.step_size=null"),
])
def test_build_errors_name_the_key(node, match):
    with pytest.raises(ConfigError, match=match):
        options.build(Control, node, "method.scheduler")


def test_weight_recipe_scales_every_phase_lr_by_the_same_factor():
    w = WeightRecipe().scaled_to(0.03)
    assert w.lr_prune_start == pytest.approx(0.03)
    assert w.lr_regrow_end / w.lr_prune_start == pytest.approx(WeightRecipe().lr_regrow_end / 0.1)
