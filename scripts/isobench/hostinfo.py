"""The host's fingerprint: what a result depends on and a reader must know to trust it."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path
from typing import Any

from .util import stable_hash


def virtualization() -> str:
    """What /dev/kvm offers: kvm_intel | kvm_amd | kvm_pvm (needs a PVM guest kernel) | none."""
    if not Path("/dev/kvm").exists():
        return "none"
    for mod in ("kvm_intel", "kvm_amd", "kvm_pvm"):
        if Path(f"/sys/module/{mod}").exists():
            return mod
    return "unknown"


def cgroup_layout() -> str:
    """'v2' on a pure cgroup2 host, 'v1' on a legacy or hybrid one (where /sys/fs/cgroup is a tmpfs
    of v1 hierarchies and cgroup2, if any, is mounted below it): the rule LXC itself applies."""
    return "v2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "v1"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_mib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 0


def fingerprint() -> dict[str, Any]:
    facts = {"cpu_model": cpu_model(), "cores": os.cpu_count() or 0, "memory_mib": memory_mib(),
             "kernel": platform.release(), "cgroup_layout": cgroup_layout(),
             "virtualization": virtualization(), "arch": platform.machine()}
    # memory_mib drifts by a few MiB between boots; round so the fingerprint stays stable
    key = {**facts, "memory_mib": round(facts["memory_mib"] / 1024)}
    return {**facts, "hostname": socket.gethostname(), "fingerprint": stable_hash(key)}


def hosts_file(hostname: str) -> str:
    """The /etc/hosts an instance gets, so that its own host name resolves without DNS. The image
    has none, and tools look their host name up (mpirun does): through a resolver the instance
    cannot reach, each lookup waits out its timeouts (mpirun took 200 s in a KVM guest)."""
    return f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
