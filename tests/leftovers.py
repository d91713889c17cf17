"""What isobench objects exist on the host, seen with the host's own tools (not the project's
code): containers, instance mounts, bridges and veths, firewall rules, libvirt domains and
networks, libvirt's per-domain logs, podman containers, images and networks of the state
directory's podman store, gVisor sandboxes under its runsc root, conmon processes of that store.
Used after fault tests and at the very end of the suite."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

STATE = Path("/var/lib/isobench")


def _out(argv: list[str], env: dict[str, str] | None = None) -> str:
    if shutil.which(argv[0]) is None:
        return ""
    return subprocess.run(argv, capture_output=True, text=True, env=env).stdout


def podman_leftovers() -> list[str]:
    """The OCI driver's podman store lives under STATE/oci (its containers.conf and storage.conf);
    its runsc root and podman run state under /run/isobench-oci-<hash of STATE>."""
    conf = STATE / "oci"
    left: list[str] = []
    if (conf / "containers.conf").exists():
        env = {**os.environ, "CONTAINERS_CONF": str(conf / "containers.conf"),
               "CONTAINERS_STORAGE_CONF": str(conf / "storage.conf")}
        left += [f"podman container {n}" for n in _out(["podman", "ps", "-a", "--format", "{{.Names}}"], env).split()]
        left += [f"podman image {n}" for n in _out(["podman", "images", "-q"], env).split()]
        left += [f"podman network {n}" for n in _out(["podman", "network", "ls", "--format", "{{.Name}}"], env).split()
                 if n != "podman"]                       # podman's built-in default, never created on the host
    runsc_root = Path("/run") / f"isobench-oci-{hashlib.sha256(str(STATE).encode()).hexdigest()[:8]}" / "runsc"
    if runsc_root.exists():
        left += [f"gVisor sandbox {line.split()[0][:12]}"
                 for line in _out(["runsc", f"--root={runsc_root}", "list"]).splitlines()[1:] if line.strip()]
    for cmd in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmd.read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"conmon") and any(str(STATE / "oci").encode() in a for a in argv):
            left.append(f"conmon {cmd.parent.name}")
    left += [f"oci instance dir {p.name}" for p in (STATE / "oci" / "instances").glob("isobench-*")]
    left += [f"cgroup {p}" for p in Path("/sys/fs/cgroup").glob("*/isobench-oci/libpod-*")]
    return left


def host_leftovers() -> list[str]:
    left = [f"container {p.name}" for p in (STATE / "lxc").glob("isobench-*")]
    left += [f"instance dir {p.name}" for p in (STATE / "instances").glob("isobench-*")]
    left += [f"mount {line.split()[4]}" for line in Path("/proc/self/mountinfo").read_text().splitlines()
             if line.split()[4].startswith(str(STATE))]
    left += [f"net device {p.name}" for p in Path("/sys/class/net").glob("isobench*")]
    # ours, LXC's DNAT chain, and netavark's rules for the OCI networks (their comments name them)
    left += [f"iptables rule {r}" for r in _out(["iptables-save"]).splitlines()
             if "ISOBENCH" in r.upper() or "name: isobench-" in r]
    if Path("/run/libvirt/libvirt-sock").exists():
        left += [f"libvirt domain {n}" for n in _out(["virsh", "-q", "list", "--all", "--name"]).split()
                 if n.startswith("isobench")]
        left += [f"libvirt network {n}" for n in _out(["virsh", "-q", "net-list", "--all", "--name"]).split()
                 if n.startswith("isobench")]
    left += [f"libvirt log {p.name}" for p in Path("/var/log/libvirt/qemu").glob("isobench-*.log")]
    left += podman_leftovers()
    return left
