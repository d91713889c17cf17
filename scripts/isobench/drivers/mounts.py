"""Overlay root filesystems and the processes rooted in them (shared by the native and LXC drivers)."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import time
from pathlib import Path

from ..util import run

log = logging.getLogger("isobench")


def mounts_under(prefix: Path) -> list[str]:
    """Mount points at or below ``prefix``, deepest first (the order to unmount them in)."""
    prefix_s = str(prefix.resolve()) if prefix.exists() else str(prefix)
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mnt = line.split()[4].replace("\\040", " ")
            if mnt == prefix_s or mnt.startswith(prefix_s + "/"):
                found.append(mnt)
    return sorted(set(found), key=lambda m: m.count("/"), reverse=True)


def pids_rooted_in(root: Path) -> list[int]:
    """Processes whose root directory is ``root`` or below it (servers started in a chroot)."""
    root_s = str(root.resolve()) if root.exists() else str(root)
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            r = os.readlink(f"/proc/{entry}/root")
        except OSError:
            continue
        if r == root_s or r.startswith(root_s + "/"):
            pids.append(int(entry))
    return pids


def kill_rooted(root: Path, grace: float = 2.0) -> None:
    """SIGTERM, then SIGKILL, every process rooted in ``root``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = pids_rooted_in(root)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        end = time.monotonic() + grace
        while time.monotonic() < end and pids_rooted_in(root):
            time.sleep(0.05)


def unmount_all(prefix: Path) -> None:
    for mnt in mounts_under(prefix):
        proc = run(["umount", mnt], check=False)
        if proc.returncode != 0:
            run(["umount", "-l", mnt], check=False)


def remove_tree(path: Path) -> None:
    """Unmount everything below ``path`` and delete it; refuses to delete through a live mount."""
    if not path.exists():
        return
    kill_rooted(path)
    unmount_all(path)
    if mounts_under(path):
        raise RuntimeError(f"{path} still has mounts: {mounts_under(path)}")
    shutil.rmtree(path, ignore_errors=True)


def mount_overlay(lower: Path, base: Path) -> Path:
    """Mount a writable overlay of the read-only ``lower`` at base/root; writes go to base/upper."""
    for d in ("upper", "work", "root"):
        (base / d).mkdir(parents=True, exist_ok=True)
    root = base / "root"
    run(["mount", "-t", "overlay", "overlay", "-o",
         f"lowerdir={lower},upperdir={base / 'upper'},workdir={base / 'work'}", str(root)])
    return root
