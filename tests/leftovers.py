"""What isobench objects exist on the host, seen with the host's own tools (not the project's
code): containers, instance mounts, bridges and veths, firewall rules, libvirt domains and
networks, libvirt's per-domain logs. Used after fault tests and at the very end of the suite."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

STATE = Path("/var/lib/isobench")


def _out(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        return ""
    return subprocess.run(argv, capture_output=True, text=True).stdout


def host_leftovers() -> list[str]:
    left = [f"container {p.name}" for p in (STATE / "lxc").glob("isobench-*")]
    left += [f"instance dir {p.name}" for p in (STATE / "instances").glob("isobench-*")]
    left += [f"mount {line.split()[4]}" for line in Path("/proc/self/mountinfo").read_text().splitlines()
             if line.split()[4].startswith(str(STATE))]
    left += [f"net device {p.name}" for p in Path("/sys/class/net").glob("isobench*")]
    left += [f"iptables rule {r}" for r in _out(["iptables-save"]).splitlines() if "ISOBENCH" in r.upper()]
    if Path("/run/libvirt/libvirt-sock").exists():
        left += [f"libvirt domain {n}" for n in _out(["virsh", "-q", "list", "--all", "--name"]).split()
                 if n.startswith("isobench")]
        left += [f"libvirt network {n}" for n in _out(["virsh", "-q", "net-list", "--all", "--name"]).split()
                 if n.startswith("isobench")]
    left += [f"libvirt log {p.name}" for p in Path("/var/log/libvirt/qemu").glob("isobench-*.log")]
    return left
