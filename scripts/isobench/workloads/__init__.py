"""Workload kinds by name. Adding one: write its module, register it here, add it to the config."""

from .base import Context, Metric, Sample, Workload
from .compression import Compression
from .fio import Fio

KINDS: dict[str, type[Workload]] = {w.kind: w for w in (Compression, Fio)}

__all__ = ["KINDS", "Context", "Metric", "Sample", "Workload"]
