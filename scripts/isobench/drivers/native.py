"""The host itself, running the same tool builds as the other environments.

Processes run in the host's namespaces and cgroups (no limits, like the paper's native runs), but
``chroot``ed into a writable overlay of the shared image root filesystem, so native, LXC and KVM
execute byte-identical binaries. /data is a plain host directory (the host's own filesystem).
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from pathlib import Path

from ..hostinfo import hosts_file
from ..util import run
from .base import DATA_DIR, GUEST_PATH, NAME_PREFIX, Driver, Endpoint, Instance, is_marked_dir, mark_dir
from .hostnet import loopback_for
from .mounts import mount_overlay, remove_tree


class NativeInstance(Instance):
    def __init__(self, name: str, base: Path, rootfs: Path):
        super().__init__(name)
        self.base = base
        try:
            self.root = mount_overlay(rootfs, base)
            (self.root / "etc" / "hosts").write_text(hosts_file(socket.gethostname()))   # in the overlay only
            data = base / "data"
            data.mkdir(mode=0o755, exist_ok=True)
            for src, dst, extra in (("/proc", "proc", []), ("/sys", "sys", []), ("/dev", "dev", []),
                                    ("/dev/pts", "dev/pts", []), (str(data), DATA_DIR.lstrip("/"), [])):
                target = self.root / dst
                target.mkdir(parents=True, exist_ok=True)
                run(["mount", "--bind", *extra, src, str(target)])
            for tmp in ("tmp", "run"):
                run(["mount", "-t", "tmpfs", "-o", "mode=1777", "tmpfs", str(self.root / tmp)])
        except BaseException:
            remove_tree(base)
            raise

    def _exec(self, argv: Sequence[str], timeout: float, input: bytes | None):
        cmd = ["chroot", str(self.root), "/usr/bin/env", "-i", f"PATH={GUEST_PATH}", "HOME=/root",
               "LC_ALL=C", *argv]
        return self._host_exec(cmd, timeout, input, argv[0])

    def endpoint(self, port: int) -> Endpoint:
        return Endpoint(self.bind_address, port)

    @property
    def bind_address(self) -> str:
        return loopback_for(self.name)

    def _teardown(self) -> None:
        remove_tree(self.base)


class NativeDriver(Driver):
    kind = "native"
    ORDER = 0
    FAMILY = "native"
    OPTIONS: dict = {}
    LIMITED = False

    def check_resources(self, inside: dict) -> None:
        """Native is never limited (as in the paper): nothing to compare."""

    def start(self, name: str) -> Instance:
        base = self.paths.instance_dir(name)
        remove_tree(base)
        base.mkdir(parents=True, mode=0o700)
        mark_dir(base, self.paths)
        return NativeInstance(name, base, Path(self.image["rootfs"]))

    @classmethod
    def cleanup_stale(cls, paths) -> list[str]:
        """Remove this state_dir's native instance directories: those with its marker, and (made
        before markers) those of the old name with an overlay upper layer; never a KVM one (.kvm)."""
        removed = []
        if paths.instances.is_dir() and not paths.instances.is_symlink():
            for d in sorted(paths.instances.iterdir()):
                if not d.is_dir() or d.is_symlink() or d.name.endswith(".kvm"):
                    continue
                legacy = d.name.startswith(NAME_PREFIX) and (d / "upper").exists() and not (d / "config").exists()
                if is_marked_dir(d, paths) or legacy:
                    remove_tree(d)
                    removed.append(f"native instance {d.name}")
        return removed
