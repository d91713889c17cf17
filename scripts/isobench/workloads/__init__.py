"""Workload kinds by name. Adding one: a module in this directory whose Workload subclass sets
``kind`` (found here by itself, as drivers are), and an entry in the config."""

import importlib
import pkgutil
from typing import Any

from .base import Context, Metric, Sample, Workload


def _discover() -> dict[str, type[Workload]]:
    found: dict[str, type[Workload]] = {}
    for mod in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{mod.name}")
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, Workload) and "kind" in vars(obj):
                found[obj.kind] = obj
    return dict(sorted(found.items()))


#: every workload kind, by name
KINDS: dict[str, type[Workload]] = _discover()


def from_param(param: dict[str, Any]) -> Workload:
    """A workload from the value a rule passes (Workload.to_param)."""
    p = dict(param)
    name, kind = p.pop("workload"), p.pop("kind")
    return KINDS[kind](name, p)


__all__ = ["KINDS", "Context", "Metric", "Sample", "Workload", "from_param"]
