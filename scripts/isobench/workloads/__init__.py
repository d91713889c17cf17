"""Workload kinds by name. Adding one: write its module, register it here, add it to the config."""

from typing import Any

from .base import Context, Metric, Sample, Workload
from .compression import Compression
from .fio import Fio
from .linpack import Linpack
from .mysql import Mysql
from .net_bandwidth import NetBandwidth
from .net_latency import NetLatency
from .randomaccess import RandomAccess
from .redis import Redis
from .stream import Stream

KINDS: dict[str, type[Workload]] = {w.kind: w for w in (Compression, Fio, Linpack, Stream, RandomAccess,
                                                         NetBandwidth, NetLatency, Redis, Mysql)}



def from_param(param: dict[str, Any]) -> Workload:
    """A workload from the value a rule passes (Workload.to_param)."""
    p = dict(param)
    name, kind = p.pop("workload"), p.pop("kind")
    return KINDS[kind](name, p)


__all__ = ["KINDS", "Context", "Metric", "Sample", "Workload", "from_param"]
