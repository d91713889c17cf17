"""Environment drivers by kind."""

from .base import Driver, Instance, Limits, StatePaths
from .kvm import KvmDriver
from .lxc import LxcDriver
from .native import NativeDriver

KINDS: dict[str, type[Driver]] = {d.kind: d for d in (NativeDriver, LxcDriver, KvmDriver)}

__all__ = ["KINDS", "Driver", "Instance", "Limits", "StatePaths"]
