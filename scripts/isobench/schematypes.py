"""Builders of the JSON-schema properties that config options and workload parameters are declared with.

``integer(1, 1000, default=2, description="...")`` stands for
``{"type": "integer", "minimum": 1, "maximum": 1000, "default": 2, "description": "..."}``: the keys
always come in that order (type and constraints, default, description), and a bound or default left
out is left out of the property, so ``config/schema.json`` (generated from these) does not depend on
how a declaration is spelled. Properties of other shapes (enums, nullable values) are plain dicts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: marks "no default" (a default of None is a value: JSON null)
NO_DEFAULT: Any = object()


def _prop(constraints: dict[str, Any], default: Any, description: str) -> dict[str, Any]:
    out = {k: v for k, v in constraints.items() if v is not None}
    if default is not NO_DEFAULT:
        out["default"] = default
    out["description"] = description
    return out


def integer(minimum: int | None = None, maximum: int | None = None, *, default: Any = NO_DEFAULT,
            description: str) -> dict[str, Any]:
    """A whole number in [minimum, maximum] (either bound may be left open)."""
    return _prop({"type": "integer", "minimum": minimum, "maximum": maximum}, default, description)


def number(minimum: float | None = None, maximum: float | None = None, *, default: Any = NO_DEFAULT,
           description: str) -> dict[str, Any]:
    """A real number in [minimum, maximum] (either bound may be left open)."""
    return _prop({"type": "number", "minimum": minimum, "maximum": maximum}, default, description)


def positive(*, default: Any = NO_DEFAULT, description: str) -> dict[str, Any]:
    """A real number greater than 0."""
    return _prop({"type": "number", "exclusiveMinimum": 0}, default, description)


def string(pattern: str, *, default: Any = NO_DEFAULT, description: str) -> dict[str, Any]:
    """A string matching ``pattern`` (a regular expression; anchor it)."""
    return _prop({"type": "string", "pattern": pattern}, default, description)


def choices(options: Iterable[str], *, default: Any = NO_DEFAULT, description: str) -> dict[str, Any]:
    """A non-empty list of distinct values, each one of ``options``."""
    return _prop({"type": "array", "items": {"enum": list(options)}, "minItems": 1, "uniqueItems": True},
                 default, description)


def one_of(options: Iterable[Any], *, default: Any = NO_DEFAULT, description: str) -> dict[str, Any]:
    """One of ``options``."""
    return _prop({"enum": list(options)}, default, description)


def sweep(minimum: int, maximum: int, *, default: list[int], description: str) -> dict[str, Any]:
    """A non-empty list of distinct whole numbers in [minimum, maximum]: the points of a sweep."""
    return _prop({"type": "array", "items": {"type": "integer", "minimum": minimum, "maximum": maximum},
                  "minItems": 1, "uniqueItems": True}, default, description)
