"""Workload kinds by name. Adding one: write its module, register it here, add it to the config."""

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

__all__ = ["KINDS", "Context", "Metric", "Sample", "Workload"]
