"""Environment drivers by kind."""

from .base import Driver, Instance, Limits, StatePaths
from .lxc import LxcDriver
from .native import NativeDriver

KINDS: dict[str, type[Driver]] = {d.kind: d for d in (NativeDriver, LxcDriver)}

__all__ = ["KINDS", "Driver", "Instance", "Limits", "StatePaths"]
