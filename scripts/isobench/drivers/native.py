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
from .base import DATA_DIR, GUEST_PATH, NAME_PREFIX, Driver, Endpoint, Instance
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
        return Endpoint("127.0.0.1", port)

    @property
    def bind_address(self) -> str:
        return "127.0.0.1"

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
        return NativeInstance(name, base, Path(self.image["rootfs"]))

    @classmethod
    def cleanup_stale(cls, paths) -> list[str]:
        removed = []
        if paths.instances.exists():
            for d in sorted(paths.instances.iterdir()):
                if d.name.startswith(NAME_PREFIX) and (d / "upper").exists() and not (d / "config").exists():
                    remove_tree(d)
                    removed.append(f"native instance {d.name}")
        return removed
