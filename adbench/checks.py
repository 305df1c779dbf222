"""Declared limits of config fields, checked on load and listed in the JSON Schema (a leaf module).

A field declares ``choices`` (the values it takes) and ``bounds`` (``ge``, ``gt``, ``le``, ``lt``) in its
metadata; ``check_fields`` refuses anything else by name, and ``adbench schema`` writes the same limits.
"""

from __future__ import annotations

import dataclasses
import operator
from typing import Any

from adbench.errors import ConfigError

BOUNDS = {"ge": (operator.ge, ">="), "gt": (operator.gt, ">"), "le": (operator.le, "<="), "lt": (operator.lt, "<")}
SCHEMA_BOUNDS = {"ge": "minimum", "gt": "exclusiveMinimum", "le": "maximum", "lt": "exclusiveMaximum"}


def bounded(default: Any, **bounds: float) -> Any:
    """A dataclass field with ``default`` and numeric ``bounds`` (``ge=1``, ``gt=0``, ...)."""
    return dataclasses.field(default=default, metadata={"bounds": bounds})


def check_fields(obj: Any, prefix: str = "") -> None:
    """Refuse a dataclass's field values outside their declared choices or bounds (None is always allowed
    where it is the default: the field is then unset)."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if value is None:
            continue
        choices = f.metadata.get("choices")
        if choices is not None and value not in choices:
            raise ConfigError(f"{prefix}{f.name} must be one of {choices}, got {value!r}")
        for name, bound in f.metadata.get("bounds", {}).items():
            test, symbol = BOUNDS[name]
            if not test(value, bound):
                raise ConfigError(f"{prefix}{f.name} must be {symbol} {bound}, got {value!r}")


def schema_limits(field: dataclasses.Field) -> dict[str, Any]:
    """The JSON Schema keywords of a field's declared choices and bounds."""
    out: dict[str, Any] = {SCHEMA_BOUNDS[k]: v for k, v in field.metadata.get("bounds", {}).items()}
    choices = field.metadata.get("choices")
    if choices is not None:
        out["enum"] = [*choices, *([None] if field.default is None else [])]
    return out
