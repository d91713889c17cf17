"""Real LXC containers through the lxc-* tools (privileged, tini as init).

One read-only image root filesystem serves every container through an overlay (each container
writes only into its own delta). Networking ``bridge`` (veth on the pipeline's private bridge,
static address), ``nat`` (same, but clients reach the server through a DNAT rule on a host
address, like Docker's published ports) or ``host`` (the host's network namespace, like
``--net=host``). Storage ``rootfs`` (/data inside the container filesystem, the paper's AUFS case)
or ``volume`` (/data bind-mounted from a host directory). CPU and memory limits use the cgroup key
family of the host's layout and are read back after start: a limit that did not apply is an error.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import InstanceError, Unavailable
from ..hostinfo import cgroup_layout, hosts_file
from ..schematypes import one_of
from ..util import run
from . import hostnet
from .base import (
    DATA_DIR,
    GUEST_PATH,
    NAME_PREFIX,
    Availability,
    Driver,
    Endpoint,
    Instance,
    Limits,
    StatePaths,
    hostname_for,
    is_under,
    owner_marker,
    wait_until,
)
from .mounts import remove_tree

log = logging.getLogger("isobench")

BRIDGE = "isobench0"
#: the first line of every container config: the ownership marker (base.owner_marker)
OWNER_LINE = "# owner: "
CGROUP_ROOT = Path("/sys/fs/cgroup")


def limit_keys(limits: Limits, layout: str) -> dict[str, str]:
    """The container config lines for the limits, in the family the host uses."""
    mem = limits.memory_mib * 1024 * 1024
    if layout == "v2":
        return {"lxc.cgroup2.cpuset.cpus": limits.cpuset(), "lxc.cgroup2.memory.max": str(mem),
                "lxc.cgroup2.memory.swap.max": "0"}
    return {"lxc.cgroup.cpuset.cpus": limits.cpuset(), "lxc.cgroup.memory.limit_in_bytes": str(mem)}


def read_back_limits(name: str, layout: str) -> dict[str, str]:
    """The limits as the host's cgroup files show them for a running container."""
    if layout == "v2":
        base = CGROUP_ROOT / f"lxc.payload.{name}"
        files = {"cpuset": base / "cpuset.cpus", "memory": base / "memory.max"}
    else:
        files = {"cpuset": CGROUP_ROOT / "cpuset" / f"lxc.payload.{name}" / "cpuset.cpus",
                 "memory": CGROUP_ROOT / "memory" / f"lxc.payload.{name}" / "memory.limit_in_bytes"}
    out = {}
    for key, f in files.items():
        try:
            out[key] = f.read_text().strip()
        except OSError:
            out[key] = "<missing>"
    return out


def expand_cpuset(spec: str) -> list[int]:
    cpus: list[int] = []
    for part in spec.split(","):
        if "-" in part:
            a, b = part.split("-")
            cpus.extend(range(int(a), int(b) + 1))
        elif part:
            cpus.append(int(part))
    return cpus


class LxcInstance(Instance):
    def __init__(self, name: str, driver: LxcDriver):
        super().__init__(name)
        self.lxcpath = driver.lxcpath
        self.marker = owner_marker(driver.paths)
        self.net = driver.options.get("net", "bridge")
        self.ip = self.mac = self.gateway = None
        self.subnet = driver.subnet
        self._published: dict[int, int] = {}   # port inside -> host port it is published on
        self.limits_seen: dict[str, str] = {}
        try:
            self._create(driver)
            self._start(driver.limits)
        except BaseException:
            self._teardown()
            raise

    @property
    def dir(self) -> Path:
        return self.lxcpath / self.name

    def _create(self, driver: LxcDriver) -> None:
        delta = self.dir / "delta0"
        delta.mkdir(parents=True, mode=0o700)
        (delta / "etc").mkdir(mode=0o755)           # the overlay's upper layer: this container only
        (delta / "etc" / "hosts").write_text(hosts_file(hostname_for(self.name)))
        lines = {
            "lxc.include": "/usr/share/lxc/config/common.conf",
            "lxc.arch": "x86_64",
            "lxc.uts.name": hostname_for(self.name),
            "lxc.rootfs.path": f"overlay:{driver.image['rootfs']}:{delta}",
            "lxc.init.cmd": "/usr/bin/tini -s -- /bin/sleep infinity",
            "lxc.apparmor.profile": "unconfined",
            "lxc.tty.max": "0",
            "lxc.pty.max": "16",
            "lxc.mount.auto": "cgroup:mixed:force proc:mixed sys:mixed",
        }
        # /dev/shm as native (the host's), the KVM guest (its init) and Docker have it: POSIX shared
        # memory (Open MPI's shared-memory transport among others) must not differ between them
        extra: list[tuple[str, str]] = [("lxc.mount.entry", "tmpfs dev/shm tmpfs rw,nosuid,nodev,create=dir 0 0")]
        if self.net in ("bridge", "nat"):
            self.gateway = hostnet.ensure_bridge(BRIDGE, self.subnet, self.marker)
            self.ip, self.mac = hostnet.address_for(self.name, self.subnet, taken=self._addresses_in_use())
            prefix = self.subnet.split("/")[1]
            run(["ip", "neigh", "flush", "dev", BRIDGE, "to", self.ip], check=False)
            extra += [("lxc.net.0.type", "veth"), ("lxc.net.0.link", BRIDGE),
                      ("lxc.net.0.name", "eth0"), ("lxc.net.0.flags", "up"),
                      # unique while the address is: from the address's last two bytes
                      ("lxc.net.0.veth.pair", "ib" + self.mac.replace(":", "")[-6:]),
                      ("lxc.net.0.hwaddr", self.mac), ("lxc.net.0.ipv4.address", f"{self.ip}/{prefix}")]
        else:  # host: share the host's network namespace
            extra.append(("lxc.net.0.type", "none"))
        if driver.options.get("storage", "rootfs") == "volume":
            vol = self.dir / "volume"
            vol.mkdir(mode=0o755)
            extra.append(("lxc.mount.entry", f"{vol} {DATA_DIR.lstrip('/')} none bind,create=dir 0 0"))
        layout = cgroup_layout()
        self.layout = layout
        body = [f"{OWNER_LINE}{self.marker}"]
        body += [f"{k} = {v}" for k, v in lines.items()] + [f"{k} = {v}" for k, v in extra]
        body += [f"{k} = {v}" for k, v in limit_keys(driver.limits, layout).items()]
        (self.dir / "config").write_text("\n".join(body) + "\n")

    def _addresses_in_use(self) -> set[str]:
        """The addresses the project's other containers hold (their configs under the lxcpath):
        a round's containers are alive together."""
        taken = set()
        for cfg in self.lxcpath.glob(f"{NAME_PREFIX}*/config"):
            if cfg.parent.name == self.name:
                continue
            try:
                for line in cfg.read_text().splitlines():
                    if line.startswith("lxc.net.0.ipv4.address"):
                        taken.add(line.split("=", 1)[1].strip().split("/")[0])
            except OSError:
                pass
        return taken

    def _start(self, limits: Limits) -> None:
        log_file = self.dir / "lxc.log"
        proc = run(["lxc-start", "-P", str(self.lxcpath), "-n", self.name, "-d",
                    "-o", str(log_file), "-l", "WARN"], check=False, timeout=60)
        if proc.returncode != 0:
            tail = log_file.read_text().strip().splitlines()[-3:] if log_file.exists() else []
            raise InstanceError(f"lxc-start {self.name} failed: {' | '.join(tail)[:400]}")
        run(["lxc-wait", "-P", str(self.lxcpath), "-n", self.name, "-s", "RUNNING", "-t", "15"], timeout=30)
        wait_until(lambda: self._exec(["/bin/true"], 10, None)[0] == 0, timeout=15, what=f"{self.name} attach")
        self.sh(f"mkdir -p {DATA_DIR}", timeout=30).check("mkdir /data")
        self.limits_seen = read_back_limits(self.name, self.layout)
        want_cpus = expand_cpuset(limits.cpuset())
        got_cpus = self.limits_seen["cpuset"]
        want_mem = limits.memory_mib * 1024 * 1024
        ok_cpu = got_cpus != "<missing>" and expand_cpuset(got_cpus) == want_cpus
        ok_mem = self.limits_seen["memory"].isdigit() and int(self.limits_seen["memory"]) == want_mem
        if not (ok_cpu and ok_mem):
            raise InstanceError(f"{self.name}: cgroup limits did not apply (wanted cpuset={limits.cpuset()} "
                                f"memory={want_mem}, host shows {self.limits_seen}); check lxc.log")

    def _exec(self, argv: Sequence[str], timeout: float, input: bytes | None):
        cmd = ["lxc-attach", "-P", str(self.lxcpath), "-n", self.name, "--clear-env",
               "--set-var", f"PATH={GUEST_PATH}", "--set-var", "HOME=/root", "--set-var", "LC_ALL=C",
               "--", *argv]
        return self._host_exec(cmd, timeout, input, argv[0])

    def cpu_seconds(self) -> float | None:
        """The container's cgroup CPU time (cpuacct.usage on cgroup v1, cpu.stat usage_usec on v2):
        everything that ran inside it, its servers included."""
        try:
            if self.layout == "v2":
                stat = (CGROUP_ROOT / f"lxc.payload.{self.name}" / "cpu.stat").read_text().split()
                return int(stat[stat.index("usage_usec") + 1]) / 1e6
            return int((CGROUP_ROOT / "cpuacct" / f"lxc.payload.{self.name}" / "cpuacct.usage").read_text()) / 1e9
        except (OSError, ValueError, IndexError):
            return None

    def alive(self) -> bool:
        proc = run(["lxc-info", "-P", str(self.lxcpath), "-n", self.name, "-s", "-H"], check=False, timeout=30)
        return proc.stdout.decode().strip() == "RUNNING"

    def endpoint(self, port: int) -> Endpoint:
        if self.net == "host":
            return Endpoint(self.bind_address, port)
        if self.net == "nat":
            if port not in self._published:
                self._published[port] = hostnet.add_dnat(self.gateway, port, self.ip, self.name, self.marker)
            return Endpoint(self.gateway, self._published[port])
        return Endpoint(self.ip, port)

    @property
    def bind_address(self) -> str:
        return hostnet.loopback_for(self.name) if self.net == "host" else self.ip

    def describe(self) -> dict[str, Any]:
        seen = super().describe()
        seen.update(cgroup_layout=self.layout, cgroup_cpuset=self.limits_seen.get("cpuset"),
                    cgroup_memory=self.limits_seen.get("memory"), net=self.net, address=self.ip)
        return seen

    def _teardown(self) -> None:
        if self._published:
            hostnet.remove_dnat(self.marker, self.name)
        destroy_container(self.lxcpath, self.name)
        if self.net in ("bridge", "nat"):
            # the kernel deletes the veth when the container's netns goes, a moment after lxc-stop
            others = [d for d in self.lxcpath.glob(f"{NAME_PREFIX}*") if d.name != self.name]
            if not others:
                try:
                    wait_until(lambda: not hostnet.bridge_ports(BRIDGE), timeout=5, what="veth removal")
                except InstanceError:
                    pass
            hostnet.remove_bridge(BRIDGE, self.marker)


def is_ours(lxcpath: Path, name: str, paths: StatePaths) -> bool:
    """Whether the container directory ``name`` in the project's lxcpath was made for this
    state_dir: its config's first line is the marker, or (made before markers) the name has the
    prefix and the config's root filesystem (or, half-made, the directory alone) is under state_dir.
    A container someone else put there (another config) is not."""
    try:
        text = (lxcpath / name / "config").read_text()
    except FileNotFoundError:
        return name.startswith(NAME_PREFIX) and is_under(lxcpath / name, paths.root)
    except OSError:
        return False
    lines = text.splitlines()
    if lines and lines[0] == f"{OWNER_LINE}{owner_marker(paths)}":
        return True
    if not name.startswith(NAME_PREFIX) or any(line.startswith(OWNER_LINE) for line in lines):
        return False
    rootfs = next((line.split("=", 1)[1].strip() for line in lines if line.startswith("lxc.rootfs.path")), "")
    return bool(rootfs) and is_under(rootfs.rsplit(":", 1)[-1], paths.root)


def destroy_container(lxcpath: Path, name: str) -> None:
    """Stop (kill) and remove a container and its directory; tolerant of half-made ones."""
    d = lxcpath / name
    if (d / "config").exists():
        run(["lxc-stop", "-P", str(lxcpath), "-n", name, "-k"], check=False, timeout=60)
        run(["lxc-destroy", "-P", str(lxcpath), "-n", name], check=False, timeout=60)
    for ctrl in CGROUP_ROOT.iterdir() if CGROUP_ROOT.exists() else []:
        for leftover in ctrl.glob(f"lxc.monitor.{name}*") if ctrl.is_dir() else []:
            try:
                if not (leftover / "cgroup.procs").read_text().strip():
                    leftover.rmdir()
            except OSError:
                pass
    remove_tree(d)


class LxcDriver(Driver):
    """Real LXC containers through the lxc-* tools (privileged, tini as init)."""

    kind = "lxc"
    ORDER = 10
    FAMILY = "system container"
    NET_HELP = ("bridge: veth on the private bridge; nat: clients go through a DNAT rule on a host address "
                "(Docker NAT); host: the host's network namespace (net=host)")
    STORAGE_HELP = ("where /data lives: inside the container filesystem (overlay, the paper's AUFS) or a "
                    "bind-mounted host directory (Docker volume)")
    OPTIONS = {"net": one_of(["bridge", "nat", "host"], default="bridge", description=NET_HELP),
               "storage": one_of(["rootfs", "volume"], default="rootfs", description=STORAGE_HELP)}

    NETWORK = {"default": "10.213.77.0/24", "description": "private subnet of the LXC bridge (isobench0)"}

    @classmethod
    def uses_subnet(cls, options: dict[str, Any]) -> bool:
        return options.get("net", cls.OPTIONS["net"]["default"]) != "host"

    @property
    def lxcpath(self) -> Path:
        return self.paths.root / "lxc"

    def availability(self) -> Availability:
        # missing tools are an installation problem, not a property of the host: the environment's
        # jobs fail (required), it is not skipped
        if shutil.which("lxc-start") is None:
            return Availability(False, "lxc tools not found (lxc-start): install the 'lxc' package "
                                       "(./install.sh does)", required=True)
        return Availability(True)

    def provision(self) -> dict[str, Any]:
        self.check_capacity()
        return {}

    def start(self, name: str) -> Instance:
        avail = self.availability()
        if not avail.available:
            raise Unavailable(f"environment {self.env}: {avail.reason}")
        self.lxcpath.mkdir(parents=True, exist_ok=True, mode=0o700)
        if (self.lxcpath / name).exists():
            if not is_ours(self.lxcpath, name, self.paths):
                raise InstanceError(f"a container {name} in {self.lxcpath} is not this project's (its config has "
                                    f"no '{OWNER_LINE}{owner_marker(self.paths)}' line); move it away")
            destroy_container(self.lxcpath, name)
        return LxcInstance(name, self)

    def settings(self) -> dict[str, Any]:
        return {"driver": self.kind, "net": self.options.get("net", "bridge"),
                "storage": self.options.get("storage", "rootfs"), "cgroup_layout": cgroup_layout(),
                "cpus": self.limits.cpus, "memory_mib": self.limits.memory_mib}

    @classmethod
    def cleanup_stale(cls, paths) -> list[str]:
        """Remove this state_dir's containers (only under its own lxcpath, only those it made), the
        DNAT rules and the bridge carrying its marker."""
        lxcpath = paths.root / "lxc"
        marker = owner_marker(paths)
        removed, names = [], set()
        if lxcpath.is_dir() and not lxcpath.is_symlink():
            for d in sorted(lxcpath.iterdir()):
                if d.is_dir() and not d.is_symlink() and is_ours(lxcpath, d.name, paths):
                    destroy_container(lxcpath, d.name)
                    removed.append(f"container {d.name}")
                    names.add(d.name)
        if hostnet.remove_dnat(marker, legacy_tags=frozenset(names)):
            removed.append(f"iptables rules in {hostnet.NAT_CHAIN}")
        if hostnet.remove_bridge(BRIDGE, marker, only_if_unused=False):
            removed.append(f"bridge {BRIDGE}")
        return removed
