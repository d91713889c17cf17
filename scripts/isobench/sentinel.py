"""The interference sentinel: what else the host was doing while an iteration was measured.

For every measured interval the host's ``/proc/stat`` CPU counters are read before and after, and a
sampler thread reads the runnable-thread count (``procs_running``) and the CPU clock every
:data:`SAMPLE_S` seconds. A short fixed-work canary (sha256 of a fixed buffer, one core, on the
host) runs at the start and end of every cell: if the host's speed changes within a round, the
canary shows it whatever the workload measures. A round whose sentinel crosses the thresholds of
the config (``sentinel:``) is flagged by the aggregate and replaced by a new round, never one cell
alone (see :mod:`isobench.rounds`).

The host CPU seconds (user, system, softirq, steal) are also the CPU cost of the work: the same
numbers serve both.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SAMPLE_S = 0.25
#: /proc/stat cpu line fields, in order (man 5 proc)
FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
CANARY_MIB = 16
#: the canary is the fastest of this many runs: one run is at the mercy of a single preemption
#: (single 32 MiB runs varied 21 % on an idle host here, the fastest of 5 x 8 MiB 9.5 %)
CANARY_RUNS = 7
_CANARY_BUF = b""


def cpu_ticks() -> dict[str, int]:
    """The aggregate 'cpu' line of /proc/stat, in clock ticks."""
    with open("/proc/stat") as f:
        parts = f.readline().split()
    return {k: int(v) for k, v in zip(FIELDS, parts[1:1 + len(FIELDS)])}


def _procs_running() -> int:
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("procs_running"):
                return int(line.split()[1])
    return 0


def cpu_mhz() -> float:
    """Mean current clock of the host's CPUs: cpufreq where the host exposes it, else /proc/cpuinfo
    (a VM's cpuinfo often shows a fixed nominal value; NaN when neither is readable)."""
    freqs = []
    for p in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/scaling_cur_freq"):
        try:
            freqs.append(int(p.read_text()) / 1000)
        except (OSError, ValueError):
            pass
    if not freqs:
        try:
            freqs = [float(line.split(":")[1]) for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("cpu MHz")]
        except (OSError, ValueError, IndexError):
            freqs = []
    return sum(freqs) / len(freqs) if freqs else float("nan")


def load1() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")


@dataclass
class Reading:
    """One measured interval as the host saw it."""
    seconds: float
    cpu_s: dict[str, float]      # host CPU seconds spent per /proc/stat field over the interval
    steal_pct: float             # steal / all CPU time of the interval, in %
    busy_pct: float              # non-idle (not idle, not iowait) share of all CPU time, in %
    procs_running: float         # mean runnable threads on the host (the measured work included)
    load1: float
    cpu_mhz: float
    #: CPU seconds the environment itself used over the interval (its cgroup, its QEMU), or None
    env_cpu_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"seconds": round(self.seconds, 4), "cpu_s": {k: round(v, 4) for k, v in self.cpu_s.items()},
                "env_cpu_s": None if self.env_cpu_s is None else round(self.env_cpu_s, 4),
                "steal_pct": round(self.steal_pct, 4), "busy_pct": round(self.busy_pct, 3),
                "procs_running": round(self.procs_running, 3), "load1": self.load1,
                "cpu_mhz": round(self.cpu_mhz, 1) if self.cpu_mhz == self.cpu_mhz else None}


class Watch:
    """``with Watch() as w: ...`` then ``w.reading``: the host's view of the interval; with
    ``env_cpu`` (a CPU-seconds counter of the environment, e.g. Instance.cpu_seconds) also what the
    environment itself used."""

    def __init__(self, env_cpu: Callable[[], float | None] | None = None) -> None:
        self.reading: Reading | None = None
        self._env_cpu = env_cpu or (lambda: None)
        self._stop = threading.Event()
        self._runnable: list[int] = []
        self._mhz: list[float] = []

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            try:
                self._runnable.append(_procs_running())
                self._mhz.append(cpu_mhz())
            except OSError:
                pass

    def __enter__(self) -> Watch:
        self._env0 = self._env_cpu()
        self._t0 = time.monotonic()
        self._ticks0 = cpu_ticks()
        self._thread = threading.Thread(target=self._sample, name="isobench-sentinel", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        ticks1 = cpu_ticks()
        seconds = time.monotonic() - self._t0
        env1 = self._env_cpu()
        self._stop.set()
        self._thread.join(timeout=2)
        hz = os.sysconf("SC_CLK_TCK")
        delta = {k: (ticks1[k] - self._ticks0[k]) / hz for k in FIELDS}
        total = sum(delta.values())
        busy = total - delta["idle"] - delta["iowait"]
        runnable = self._runnable or [_procs_running()]
        mhz = [m for m in self._mhz if m == m] or [cpu_mhz()]
        self.reading = Reading(
            seconds=seconds, cpu_s=delta,
            steal_pct=100 * delta["steal"] / total if total > 0 else 0.0,
            busy_pct=100 * busy / total if total > 0 else 0.0,
            procs_running=sum(runnable) / len(runnable), load1=load1(), cpu_mhz=sum(mhz) / len(mhz),
            env_cpu_s=env1 - self._env0 if env1 is not None and self._env0 is not None else None)


def canary() -> float:
    """Seconds for a fixed amount of single-core work on the host: the fastest of CANARY_RUNS
    sha256 passes over CANARY_MIB MiB (the host's speed, not its worst moment)."""
    global _CANARY_BUF
    if not _CANARY_BUF:
        _CANARY_BUF = bytes(range(256)) * (CANARY_MIB * 4096)
    best = float("inf")
    for _ in range(CANARY_RUNS):
        t0 = time.perf_counter()
        hashlib.sha256(_CANARY_BUF).digest()
        best = min(best, time.perf_counter() - t0)
    return best
