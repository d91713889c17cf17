"""The host's fingerprint: what a result depends on and a reader must know to trust it."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
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


#: packages whose versions change what an environment costs (the hypervisor, libvirt, LXC)
STACK_PACKAGES = ("qemu-system-x86", "libvirt-daemon", "lxc")
#: JSON object merged over the measured facts: how a test simulates another host
OVERRIDE_ENV = "ISOBENCH_HOST_FACTS"


def stack_versions() -> dict[str, str]:
    """Installed versions of STACK_PACKAGES ('' when not installed)."""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Version}\n", *STACK_PACKAGES],
                             capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    found = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    return {p: found.get(p, "") for p in STACK_PACKAGES}


def mitigations() -> str:
    """A short digest of the CPU vulnerability mitigations in force (they change syscall and
    context-switch costs, and so overheads)."""
    d = Path("/sys/devices/system/cpu/vulnerabilities")
    try:
        states = {p.name: p.read_text().strip() for p in sorted(d.iterdir())}
    except OSError:
        return "unknown"
    return stable_hash(states)


def governor() -> str:
    """The CPU frequency governor and turbo state where the host exposes them."""
    gov = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    no_turbo = Path("/sys/devices/system/cpu/intel_pstate/no_turbo")
    boost = Path("/sys/devices/system/cpu/cpufreq/boost")
    parts = []
    for label, p in (("governor", gov), ("no_turbo", no_turbo), ("boost", boost)):
        try:
            parts.append(f"{label}={p.read_text().strip()}")
        except OSError:
            pass
    return ",".join(parts) or "not exposed"


#: the facts that identify a host for the cache: a change in any of them re-measures (see
#: pipeline.host_check); hostname and exact memory are recorded but not part of it
IDENTITY = ("cpu_model", "cores", "memory_gib", "kernel", "arch", "cgroup_layout", "virtualization", "stack",
            "mitigations", "governor")


def fingerprint() -> dict[str, Any]:
    facts = {"cpu_model": cpu_model(), "cores": os.cpu_count() or 0, "memory_mib": memory_mib(),
             "kernel": platform.release(), "cgroup_layout": cgroup_layout(),
             "virtualization": virtualization(), "arch": platform.machine(), "stack": stack_versions(),
             "mitigations": mitigations(), "governor": governor()}
    # memory_mib drifts by a few MiB between boots; round so the fingerprint stays stable
    facts["memory_gib"] = round(facts["memory_mib"] / 1024)
    override = os.environ.get(OVERRIDE_ENV)
    if override:
        facts.update(json.loads(override))
    key = {k: facts[k] for k in IDENTITY}
    return {**facts, "hostname": socket.gethostname(), "fingerprint": stable_hash(key)}


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What changed between two fingerprints, in words ('kernel 6.1.0-1 -> 6.1.0-2')."""
    out = []
    for k in IDENTITY:
        a, b = old.get(k), new.get(k)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{p} {a.get(p) or '-'} -> {b.get(p) or '-'}" for p in sorted(set(a) | set(b))
                    if a.get(p) != b.get(p)]
        else:
            out.append(f"{k} {a} -> {b}")
    return out


def hosts_file(hostname: str) -> str:
    """The /etc/hosts an instance gets, so that its own host name resolves without DNS. The image
    has none, and tools look their host name up (mpirun does): through a resolver the instance
    cannot reach, each lookup waits out its timeouts (mpirun took 200 s in a KVM guest)."""
    return f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
