"""Checks of single config and option values, shared by the config dataclasses and the CLI.

A config file or a command line gives a value; :func:`number` turns it into the number the code
needs or raises ``ValueError`` naming the key and what was wrong (``"dim: 'sixteen' is not an
integer"``, ``"codebook_size: -32 must be >= 1"``). YAML reads ``1e-3`` (no dot) as a string,
so strings holding a number are accepted; booleans, NaN and infinities are not.
:func:`check_fields` applies such rules to the fields of a dataclass in its ``__post_init__``;
callers that know the file and block prefix the message (``TrainConfig.from_overrides``,
:func:`jetfm.studies.check_config_blocks`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Rule:
    """What a value must be: ``kind`` (int or float), at least ``low`` (strictly more with
    ``low_open``), below ``high`` (``high_open``: strictly), ``None`` allowed with
    ``optional``; ``special``: values allowed besides (e.g. ``max_steps = -1``, no limit)."""

    kind: type = float
    low: float | None = None
    low_open: bool = False
    high: float | None = None
    high_open: bool = False
    optional: bool = False
    special: tuple[float, ...] = ()


POSITIVE_INT = Rule(int, low=1)
NON_NEGATIVE_INT = Rule(int, low=0)
POSITIVE = Rule(float, low=0, low_open=True)
NON_NEGATIVE = Rule(float, low=0)


def number(name: str, value: Any, rule: Rule = Rule()) -> Any:
    """``value`` as ``rule.kind``, checked against ``rule``; ``ValueError`` naming ``name``.

    Accepts ints, floats and strings holding a number (YAML's ``1e-3``); an integer-valued
    float is accepted for an ``int`` rule (``2e3`` -> 2000). Rejects booleans, non-numbers,
    NaN and infinities, non-integers for ``int`` and values outside the rule's range.
    """
    if value is None and rule.optional:
        return None
    what = "an integer" if rule.kind is int else "a number"
    try:
        if isinstance(value, bool):
            raise ValueError
        as_float = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: {value!r} is not {what}") from None
    if not math.isfinite(as_float):
        raise ValueError(f"{name}: {value!r} is not finite")
    if rule.kind is int and as_float != int(as_float):
        raise ValueError(f"{name}: {value!r} is not an integer")
    result = rule.kind(int(as_float) if rule.kind is int else as_float)
    if result in rule.special:
        return result
    also = "".join(f" or {s:g}" for s in rule.special)
    if rule.low is not None and (result < rule.low or
                                 (rule.low_open and result == rule.low)):
        raise ValueError(f"{name}: {value!r} must be {'>' if rule.low_open else '>='} "
                         f"{rule.low:g}{also}")
    if rule.high is not None and (result > rule.high or
                                  (rule.high_open and result == rule.high)):
        raise ValueError(f"{name}: {value!r} must be {'<' if rule.high_open else '<='} "
                         f"{rule.high:g}{also}")
    return result


def check_fields(obj: Any, rules: Mapping[str, Rule]) -> None:
    """Replace each field of ``obj`` named in ``rules`` by its checked value (:func:`number`);
    ``ValueError`` naming the first bad field."""
    for name, rule in rules.items():
        setattr(obj, name, number(name, getattr(obj, name), rule))


def check_flag(name: str, value: Any) -> bool:
    """``value`` if it is a bool, else ``ValueError`` naming ``name`` (YAML: true/false)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name}: {value!r} is not true or false")
    return value


def check_divisible(obj: Any, dim: str = "dim", heads: str = "n_heads") -> None:
    """``ValueError`` unless ``obj.<dim>`` is a multiple of ``obj.<heads>`` (attention splits
    the width evenly over the heads)."""
    d, h = getattr(obj, dim), getattr(obj, heads)
    if d % h:
        raise ValueError(f"{dim}: {d} must be a multiple of {heads} ({h})")


def from_mapping(cls: type, data: Mapping[str, Any], where: str, *,
                 fixed: Mapping[str, Any] | None = None, also_valid: tuple[str, ...] = ()
                 ) -> Any:
    """``cls(**data, **fixed)`` for a dataclass ``cls`` built from config data: a key of
    ``data`` that is not a field (or is one of ``fixed``, which the code sets) raises
    ``ValueError`` naming ``where``, the unknown keys and the valid ones (with ``also_valid``,
    keys the caller took out of ``data`` itself); a bad value raises the dataclass's own
    ``ValueError`` prefixed by ``where``."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected a mapping of keys, got {data!r}")
    fixed = dict(fixed or {})
    valid = {f.name for f in fields(cls)} - set(fixed)
    unknown = set(data) - valid
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; valid: "
                         f"{sorted(valid | set(also_valid))}")
    try:
        return cls(**data, **fixed)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}") from None


def check_count(name: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` as an ``int`` in [``low``, ``high``]: a Python or numpy integer (not a bool,
    float or string: ``TypeError``), ``ValueError`` naming ``name`` when out of range."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name}: {value!r} is not an integer (got {type(value).__name__})")
    value = int(value)
    if value < low:
        raise ValueError(f"{name}: {value} must be >= {low}")
    if high is not None and value > high:
        raise ValueError(f"{name}: {value} must be <= {high}")
    return value


def float_array(name: str, value: Any) -> np.ndarray:
    """``value`` as a real floating-point numpy array (not copied when it already is one);
    ``TypeError`` naming ``name`` for integer, bool, complex, string or object data (an
    integer or complex array would be cast silently, and lose the check on its meaning)."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as err:  # ragged nesting, unconvertible objects
        raise TypeError(f"{name}: not a rectangular numeric array ({err})") from None
    if array.dtype.kind != "f":
        raise TypeError(f"{name}: expected a real floating-point array, got dtype {array.dtype}")
    return array
