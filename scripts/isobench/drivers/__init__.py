"""Environment drivers by kind, and the only place that turns an environment's settings into one.

Adding a kind: a module or package in this directory whose Driver subclass sets ``kind``,
``OPTIONS`` (its config schema) and, if it creates a private network, ``NETWORK``. It is found
here by itself (every module of this package is imported and its Driver subclasses registered);
the config schema, the pipeline, the cell runner and the cleanup ask drivers only through
:class:`Driver`.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from typing import Any

from .base import Driver, EnvSpec, Instance, Limits, StatePaths
from .native import NativeDriver


def _discover() -> dict[str, type[Driver]]:
    found: dict[str, type[Driver]] = {}
    for mod in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{mod.name}")
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, Driver) and "kind" in vars(obj):
                found[obj.kind] = obj
    return dict(sorted(found.items(), key=lambda kv: (kv[1].ORDER, kv[0])))


#: every driver kind, in the order environments are listed (Driver.ORDER)
KINDS: dict[str, type[Driver]] = _discover()
#: the driver host-side clients run in (load generators of server workloads)
HOST_CLIENT: type[Driver] = NativeDriver


def host_limits() -> Limits:
    """What an unlimited (native) environment is sized as for host-side helpers."""
    return Limits(os.cpu_count() or 1, 1024)


def create(spec: EnvSpec, paths: StatePaths, image: dict[str, Any]) -> Driver:
    """The driver of one environment."""
    return KINDS[spec.kind](spec.env, spec.options, spec.limits or host_limits(), paths, image, subnet=spec.subnet)


def host_client(paths: StatePaths, image: dict[str, Any]) -> Driver:
    """Where host-side clients run (load generators of server workloads): the host itself, on the
    same image as every environment."""
    return HOST_CLIENT("client", {}, host_limits(), paths, image)


def cleanup_all(paths: StatePaths) -> list[str]:
    """Remove every host object the project created (instances, containers, domains, networks)."""
    removed: list[str] = []
    for cls in KINDS.values():
        removed += cls.cleanup_stale(paths)
    return removed


def release_all(paths: StatePaths) -> list[str]:
    """Stop every host daemon a driver started for the run."""
    stopped: list[str] = []
    for cls in KINDS.values():
        stopped += cls.release(paths)
    return stopped


__all__ = ["HOST_CLIENT", "KINDS", "Driver", "EnvSpec", "Instance", "Limits", "StatePaths", "cleanup_all", "create",
           "host_client",
           "release_all"]
