"""OCI containers through rootful podman (Debian's podman 4.3): the paper's Docker for real, and
gVisor (``runsc``) as one more OCI runtime.

Every container runs the shared image: podman gets ``--rootfs`` of a private overlay on the image
root filesystem (the same overlay the native and LXC drivers use), so the tool builds stay
byte-identical; no image is imported or pulled. The paper's Docker configurations are options:
``net: nat`` (a published port, ``-p``: netavark's DNAT on the kind's private bridge address, a
host port of its own per instance), ``net: host`` (``--network host``: the host's ports, like
native), ``net: bridge`` (the container's own address on the private bridge); ``storage: rootfs``
(/data in the container's layered filesystem) or ``volume`` (a bind-mounted host directory).

Podman is configured entirely under ``state_dir/oci`` (containers.conf and storage.conf through
CONTAINERS_CONF and CONTAINERS_STORAGE_CONF: cgroupfs manager, file events, a private storage
root and network directory), never in /etc. Every container and network carries the label
``isobench.state_dir=<state_dir>``; cleanup removes only labelled objects (and the runsc sandboxes
and conmon processes of this state directory's own runtime root and storage).

Limits: ``--cpuset-cpus``/``--memory`` (no swap), read back from the host's cgroup files of the
container's init process after start; a limit that did not apply is an error, as for LXC.
"""

from __future__ import annotations

import fcntl
import hashlib
import ipaddress
import json
import logging
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

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
)
from .lxc import expand_cpuset
from .mounts import mount_overlay, remove_tree

log = logging.getLogger("isobench")

LABEL = "isobench.state_dir"
CGROUP_PARENT = "isobench-oci"
CGROUP_ROOT = Path("/sys/fs/cgroup")
#: host ports a NAT container's servers are published on (one block of free ports per instance)
HOST_PORTS = (30000, 60000)
#: podman 4.3 lowers its own RLIMIT_NPROC to this (measured: /proc/<podman>/limits); a container
#: cannot be given more than its runtime has without CAP_SYS_RESOURCE
PODMAN_NPROC = 32768
NETAVARK_FILTER_HOOK = ["FORWARD", "-m", "comment", "--comment", "netavark firewall plugin rules",
                        "-j", "NETAVARK_FORWARD"]
NETAVARK_NAT_HOOKS = [["PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "NETAVARK-HOSTPORT-DNAT"],
                      ["OUTPUT", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "NETAVARK-HOSTPORT-DNAT"],
                      ["POSTROUTING", "-j", "NETAVARK-HOSTPORT-MASQ"]]
NETAVARK_NAT_CHAINS = ["NETAVARK-HOSTPORT-DNAT", "NETAVARK-HOSTPORT-MASQ", "NETAVARK-HOSTPORT-SETMARK"]


# -- the podman engine of one state directory ------------------------------------------------
class Engine:
    """Podman as configured for one state directory: its files, its environment, its commands."""

    def __init__(self, paths: StatePaths):
        self.state = Path(paths.root)
        self.dir = self.state / "oci"
        # podman detects a reboot by its tmp_dir vanishing: the run state must be on a tmpfs
        tag = hashlib.sha256(str(self.state).encode()).hexdigest()[:8]
        self.run_dir = Path("/run") / f"isobench-oci-{tag}"

    @property
    def graphroot(self) -> Path:
        return self.dir / "storage"

    @property
    def network_dir(self) -> Path:
        return self.dir / "networks"

    @property
    def runsc_root(self) -> Path:
        return self.run_dir / "runsc"

    @property
    def instances(self) -> Path:
        return self.dir / "instances"

    def containers_conf(self) -> str:
        return "\n".join([
            "# written by isobench (drivers/oci.py); podman reads it through CONTAINERS_CONF",
            "[engine]",
            'cgroup_manager = "cgroupfs"       # no systemd on the hosts this must run on',
            'events_logger = "file"',
            f'events_logfile_path = "{self.dir / "events.log"}"',
            f'tmp_dir = "{self.run_dir / "tmp"}"',
            f'volume_path = "{self.dir / "volumes"}"',
            "[network]",
            'network_backend = "netavark"',
            f'network_config_dir = "{self.network_dir}"',
            "",
        ])

    def storage_conf(self) -> str:
        return "\n".join([
            "# written by isobench (drivers/oci.py); podman reads it through CONTAINERS_STORAGE_CONF",
            "[storage]",
            'driver = "overlay"',
            f'graphroot = "{self.graphroot}"',
            f'runroot = "{self.run_dir / "storage"}"',
            "",
        ])

    def env(self) -> dict[str, str]:
        return {**os.environ, "CONTAINERS_CONF": str(self.dir / "containers.conf"),
                "CONTAINERS_STORAGE_CONF": str(self.dir / "storage.conf")}

    def ensure(self) -> None:
        """Write the configuration (and the runsc wrappers' directory) if missing or changed."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for name, text in (("containers.conf", self.containers_conf()), ("storage.conf", self.storage_conf())):
            f = self.dir / name
            if not f.exists() or f.read_text() != text:
                f.write_text(text)
        self.network_dir.mkdir(exist_ok=True)

    def argv(self, *args: str) -> list[str]:
        return ["podman", *args]

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        return run(self.argv(*args), check=check, timeout=timeout, env=self.env())

    def runsc_wrapper(self, platform: str, netstack: str) -> Path:
        """An executable podman can use as the OCI runtime: runsc with this state directory's root,
        the platform and the network stack. podman passes its ``--runtime-flag``s to whatever runtime
        a later command talks to (runc included), so the flags live in the runtime path instead."""
        path = self.dir / "bin" / f"runsc-{platform}-{netstack}"
        text = runsc_wrapper_text(shutil.which("runsc") or "/usr/bin/runsc", self.runsc_root, platform, netstack)
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            path.chmod(0o755)
        return path

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Serialises network setup and host-port choice among processes of this state directory."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.dir / "lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def labelled(self, what: str = "ps") -> list[str]:
        """Names of this state directory's containers (``ps``) or networks (``network``)."""
        if shutil.which("podman") is None or not (self.dir / "containers.conf").exists():
            return []
        label = f"label={LABEL}={self.state}"
        if what == "ps":
            proc = self.run("ps", "-a", "--filter", label, "--format", "{{.Names}}", check=False)
        else:
            proc = self.run("network", "ls", "--filter", label, "--format", "{{.Name}}", check=False)
        return proc.stdout.decode().split() if proc.returncode == 0 else []


def runsc_wrapper_text(runsc: str, root: Path, platform: str, netstack: str) -> str:
    return (f"#!/bin/sh\n# written by isobench (drivers/oci.py): runsc as podman's OCI runtime\n"
            f'exec {runsc} --root={root} --platform={platform} --network={netstack} "$@"\n')


# -- pure helpers (unit-tested) ----------------------------------------------------------------
def served_ports() -> list[int]:
    """The ports servers inside instances listen on: each workload module's ``PORT``. A NAT container
    is published on these at creation (podman cannot add a published port to a running container)."""
    from .. import workloads

    ports = {getattr(sys.modules[w.__module__], "PORT", None) for w in workloads.KINDS.values()}
    return sorted(p for p in ports if isinstance(p, int))


def limit_args(limits: Limits) -> list[str]:
    mem = f"{limits.memory_mib}m"
    return ["--cpuset-cpus", limits.cpuset(), "--memory", mem, "--memory-swap", mem]


def ulimit_args() -> list[str]:
    """The pipeline's own open-file and process limits (what a native process inherits). podman's
    defaults (1048576 files for root) exceed them and, without CAP_SYS_RESOURCE, the runtime fails
    with ``setrlimit RLIMIT_NOFILE: Operation not permitted``."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    nproc = PODMAN_NPROC if nproc == resource.RLIM_INFINITY else min(nproc, PODMAN_NPROC)
    nofile = 1048576 if nofile == resource.RLIM_INFINITY else nofile
    return ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]


def run_argv(*, name: str, state: Path, rootfs: Path, runtime: str, net: str, network: str | None,
             ip: str | None, mac: str | None, publish: Mapping[int, int], gateway: str | None,
             volume: Path | None, limits: Limits, ulimits: Sequence[str]) -> list[str]:
    """``podman run`` for one instance (global options and the ``podman`` word excluded)."""
    argv = ["run", "-d", "--name", name, "--label", f"{LABEL}={state}", "--runtime", runtime,
            "--hostname", hostname_for(name), "--cgroup-parent", f"/{CGROUP_PARENT}",
            # the instance's own /etc/hosts (written into its overlay, as LXC's): its host name on
            # 127.0.1.1 in every environment, whatever network it has
            "--no-hosts",
            "--env", f"PATH={GUEST_PATH}", "--env", "HOME=/root", "--env", "LC_ALL=C",
            # /dev/shm a tmpfs of the container's own, like the other environments' (Docker's 64 MiB
            # default is small for Open MPI's shared-memory transport; under gVisor podman's shm is a
            # host directory served through the gofer, v9fs, this mount is the Sentry's own tmpfs)
            "--mount", f"type=tmpfs,target=/dev/shm,tmpfs-size={max(64, limits.memory_mib // 2)}m",
            *limit_args(limits), *ulimits]
    if net == "host":
        argv += ["--network", "host"]
    else:
        argv += ["--network", str(network), "--ip", str(ip), "--mac-address", str(mac)]
        for port, host_port in sorted(publish.items()):
            for proto in ("tcp", "udp"):
                argv += ["-p", f"{gateway}:{host_port}:{port}/{proto}"]
    if volume is not None:
        argv += ["-v", f"{volume}:{DATA_DIR}"]
    # --rootfs is a flag: the first word after the options is the root filesystem
    argv += ["--rootfs", str(rootfs), "/usr/bin/tini", "-s", "--", "/bin/sleep", "infinity"]
    return argv


def exec_argv(name: str, argv: Sequence[str], *, interactive: bool) -> list[str]:
    return ["exec", *(["-i"] if interactive else []), "--env", f"PATH={GUEST_PATH}", "--env", "HOME=/root",
            "--env", "LC_ALL=C", name, *argv]


def port_free(host: str, port: int) -> bool:
    """Whether ``host:port`` is free for both TCP and UDP."""
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind((host if host_has(host) else "0.0.0.0", port))
            except OSError:
                return False
    return True


def host_has(address: str) -> bool:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((address, 0))
        return True
    except OSError:
        return False


def choose_host_ports(name: str, ports: Sequence[int], free=None) -> dict[int, int]:
    """A host port per served port, distinct for every instance alive at once: a block of
    consecutive ports, starting where the name's hash says, the first block whose ports are all
    free (the caller holds the engine lock until podman reserves them)."""
    free = free or (lambda p: port_free("0.0.0.0", p))
    lo, hi = HOST_PORTS
    width = max(1, len(ports))
    blocks = (hi - lo) // width
    start = int(hashlib.sha256(name.encode()).hexdigest(), 16) % blocks
    for i in range(blocks):
        base = lo + ((start + i) % blocks) * width
        block = {p: base + k for k, p in enumerate(sorted(ports))}
        if all(free(h) for h in block.values()):
            return block
    raise InstanceError(f"{name}: no free block of {width} host ports in {lo}-{hi}")


def network_json(name: str, bridge: str, subnet: str, state: Path) -> dict[str, Any]:
    """netavark's network file: a bridge of our name with the subnet's first address on the host,
    no DNS (the image needs none), Docker's NAT (outbound masquerade, published ports)."""
    net = ipaddress.ip_network(subnet)
    return {"name": name, "id": hashlib.sha256(f"{state}:{name}".encode()).hexdigest(), "driver": "bridge",
            "network_interface": bridge, "created": "2026-01-01T00:00:00Z",
            "subnets": [{"subnet": str(net), "gateway": str(next(net.hosts()))}],
            "ipv6_enabled": False, "internal": False, "dns_enabled": False,
            "labels": {LABEL: str(state)}, "ipam_options": {"driver": "host-local"}}


def runsc_platforms(flags_help: str) -> list[str]:
    """The platforms a runsc build offers, from ``runsc flags``' text for ``-platform``."""
    m = re.search(r"-platform string\s+specifies which platform to use: ([^.]*)\.", flags_help)
    return re.findall(r"[a-z]+", re.sub(r"\(default\)", "", m.group(1))) if m else []


def container_cgroups(pid: int) -> dict[str, str]:
    """A process's cgroup per controller (v1) or the unified one (key '')."""
    out = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        for c in ctrls.split(",") if ctrls else [""]:
            out[c] = path
    return out


def read_back_limits(pid: int, layout: str) -> dict[str, str]:
    groups = container_cgroups(pid)
    if layout == "v2":
        base = CGROUP_ROOT / groups[""].lstrip("/")
        files = {"cpuset": base / "cpuset.cpus", "memory": base / "memory.max"}
    else:
        files = {"cpuset": CGROUP_ROOT / "cpuset" / groups.get("cpuset", "?").lstrip("/") / "cpuset.cpus",
                 "memory": CGROUP_ROOT / "memory" / groups.get("memory", "?").lstrip("/") / "memory.limit_in_bytes"}
    out = {}
    for key, f in files.items():
        try:
            out[key] = f.read_text().strip()
        except OSError:
            out[key] = "<missing>"
    return out


def limits_applied(seen: Mapping[str, str], limits: Limits) -> bool:
    ok_cpu = seen.get("cpuset", "<missing>") != "<missing>" and \
        expand_cpuset(seen["cpuset"]) == expand_cpuset(limits.cpuset())
    mem = seen.get("memory", "")
    return ok_cpu and mem.isdigit() and int(mem) == limits.memory_mib * 1024 * 1024


# -- instances -----------------------------------------------------------------------------------
class OciInstance(Instance):
    def __init__(self, name: str, driver: OciDriver):
        super().__init__(name)
        self.engine = driver.engine
        self.net = driver.option("net")
        self.base = self.engine.instances / name
        self.ip = self.mac = self.gateway = None
        self.published: dict[int, int] = {}
        self.limits_seen: dict[str, str] = {}
        self.layout = cgroup_layout()
        self.pid = 0
        try:
            self._start(driver)
        except BaseException:
            self._teardown()
            raise

    def _start(self, driver: OciDriver) -> None:
        self.base.mkdir(parents=True, mode=0o700)
        root = mount_overlay(Path(driver.image["rootfs"]), self.base)
        (root / "etc" / "hosts").write_text(hosts_file(hostname_for(self.name)))   # in the overlay only
        (root / DATA_DIR.lstrip("/")).mkdir(exist_ok=True)
        volume = None
        if driver.option("storage") == "volume":
            volume = self.base / "volume"
            volume.mkdir(mode=0o755)
        with self.engine.lock():
            if self.net != "host":
                self.gateway = driver.ensure_network()
                others = (d for d in self.engine.instances.iterdir() if d != self.base)
                self.ip, self.mac = hostnet.address_for(self.name, driver.subnet,
                                                        taken=hostnet.addresses_held(others))
                (self.base / hostnet.ADDRESS_FILE).write_text(self.ip)
                if self.net == "nat":
                    self.published = choose_host_ports(self.name, served_ports(),
                                                       lambda p: port_free(self.gateway, p))
            argv = run_argv(name=self.name, state=self.engine.state, rootfs=root, runtime=driver.runtime_path(),
                            net=self.net, network=driver.PODMAN_NETWORK, ip=self.ip, mac=self.mac,
                            publish=self.published, gateway=self.gateway, volume=volume, limits=driver.limits,
                            ulimits=ulimit_args())
            proc = self.engine.run(*argv, check=False, timeout=120)
            if self.net != "host":
                block_forwarding(str(driver.subnet))
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip().splitlines()
            raise InstanceError(f"podman run {self.name} (runtime {driver.settings()['runtime']}) failed: "
                                f"{(err[-1] if err else '')[:400]}")
        self.pid = int(self.engine.run("inspect", "--format", "{{.State.Pid}}", self.name).stdout.decode().strip())
        self.limits_seen = read_back_limits(self.pid, self.layout)
        if not limits_applied(self.limits_seen, driver.limits):
            raise InstanceError(f"{self.name}: limits did not apply (wanted cpuset={driver.limits.cpuset()} "
                                f"memory={driver.limits.memory_mib} MiB, host shows {self.limits_seen})")
        self.sh(f"mkdir -p {DATA_DIR}", timeout=60).check(f"mkdir {DATA_DIR} in {self.name}")

    def _exec(self, argv: Sequence[str], timeout: float, input: bytes | None):
        cmd = self.engine.argv(*exec_argv(self.name, argv, interactive=input is not None))
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                                env=self.engine.env())
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise InstanceError(f"{self.name}: command timed out after {timeout:.0f}s: {argv[0]}") from None
        return proc.returncode, out, err

    def endpoint(self, port: int) -> Endpoint:
        if self.net == "host":
            return Endpoint("127.0.0.1", port)
        if self.net == "nat":
            if port not in self.published:
                raise InstanceError(f"{self.name}: port {port} was not published (a NAT container publishes the "
                                    f"ports the workload modules declare as PORT: {sorted(self.published)})")
            return Endpoint(str(self.gateway), self.published[port])
        return Endpoint(str(self.ip), port)

    @property
    def bind_address(self) -> str:
        return "127.0.0.1" if self.net == "host" else str(self.ip)

    def alive(self) -> bool:
        proc = self.engine.run("inspect", "--format", "{{.State.Running}}", self.name, check=False, timeout=60)
        return proc.stdout.decode().strip() == "true"

    def cpu_seconds(self) -> float | None:
        """The container's cgroup CPU time: everything that ran inside it (for gVisor the sandbox:
        its Sentry and gofer)."""
        try:
            groups = container_cgroups(self.pid)
            if self.layout == "v2":
                stat = (CGROUP_ROOT / groups[""].lstrip("/") / "cpu.stat").read_text().split()
                return int(stat[stat.index("usage_usec") + 1]) / 1e6
            return int((CGROUP_ROOT / "cpuacct" / groups["cpuacct"].lstrip("/") / "cpuacct.usage")
                       .read_text()) / 1e9
        except (OSError, ValueError, KeyError, IndexError):
            return None

    def describe(self) -> dict[str, Any]:
        seen = super().describe()
        seen.update(cgroup_layout=self.layout, cgroup_cpuset=self.limits_seen.get("cpuset"),
                    cgroup_memory=self.limits_seen.get("memory"), net=self.net, address=self.ip,
                    published={str(k): v for k, v in self.published.items()})
        return seen

    def _teardown(self) -> None:
        remove_container(self.engine, self.name)
        remove_tree(self.base)
        with self.engine.lock():
            remove_networks_if_unused(self.engine)


def remove_container(engine: Engine, name: str) -> None:
    """Kill and remove a container (tolerant of half-made ones), then any runsc sandbox and conmon
    that a failed start of it left behind."""
    engine.run("rm", "-f", "-t", "0", name, check=False, timeout=120)
    for cid in runsc_sandboxes(engine, name):
        run([shutil.which("runsc") or "runsc", f"--root={engine.runsc_root}", "delete", "-force", cid],
            check=False, timeout=60)
    for pid in conmon_pids(engine, name):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def runsc_sandboxes(engine: Engine, name: str | None = None) -> list[str]:
    """runsc containers under this state directory's runsc root (those of ``name``'s bundle only
    when given: podman's bundle path holds the container id, the name is in its config)."""
    if shutil.which("runsc") is None or not engine.runsc_root.exists():
        return []
    proc = run(["runsc", f"--root={engine.runsc_root}", "list", "-format", "json"], check=False, timeout=60)
    try:
        listed = json.loads(proc.stdout.decode() or "[]") or []
    except json.JSONDecodeError:
        return []
    out = []
    for c in listed:
        bundle = Path(c.get("bundle", ""))
        if name is not None:
            try:
                if json.loads((bundle / "config.json").read_text()).get("hostname") != hostname_for(name):
                    continue
            except (OSError, ValueError):
                pass
        out.append(c["id"])
    return out


def conmon_pids(engine: Engine, name: str | None = None) -> list[int]:
    """conmon processes of this state directory's storage (of container ``name`` when given): a
    failed start can leave one holding the published ports."""
    pids = []
    for entry in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = entry.read_bytes().split(b"\0")
        except OSError:
            continue
        if not argv or not argv[0].endswith(b"conmon"):
            continue
        text = [a.decode(errors="replace") for a in argv]
        if not any(a.startswith(str(engine.graphroot) + "/") for a in text):
            continue
        if name is not None and not ("-n" in text and text[text.index("-n") + 1] == name):
            continue
        pids.append(int(entry.parent.name))
    return pids


def _ipt(*args: str, check: bool = False):
    return run(["iptables", "-w", "5", *args], check=check)


def netavark_chains_exist() -> bool:
    return _ipt("-t", "nat", "-nL", "NETAVARK-HOSTPORT-DNAT").returncode == 0


def remove_netavark_skeleton() -> bool:
    """netavark leaves its shared chains (NETAVARK_FORWARD, NETAVARK-HOSTPORT-*) when its last
    network goes; remove them when nothing else uses them (no rule left in them)."""
    if not netavark_chains_exist():
        return False
    used = [r for r in _ipt("-t", "nat", "-S", "NETAVARK-HOSTPORT-DNAT").stdout.decode().splitlines()
            if r.startswith("-A ")]
    used += [r for r in _ipt("-S", "NETAVARK_FORWARD").stdout.decode().splitlines() if r.startswith("-A ")]
    if used:
        return False
    for hook in NETAVARK_NAT_HOOKS:
        while _ipt("-t", "nat", "-D", *hook).returncode == 0:
            pass
    for chain in NETAVARK_NAT_CHAINS:
        _ipt("-t", "nat", "-F", chain)
        _ipt("-t", "nat", "-X", chain)
    while _ipt("-D", *NETAVARK_FILTER_HOOK).returncode == 0:
        pass
    _ipt("-F", "NETAVARK_FORWARD")
    _ipt("-X", "NETAVARK_FORWARD")
    return True


IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
#: the comment of our FORWARD rules (the leftovers check finds them by "isobench")
NO_FORWARD = "isobench-oci-no-forward"


def forward_rules(subnet: str) -> list[list[str]]:
    return [["FORWARD", flag, subnet, "-m", "comment", "--comment", NO_FORWARD, "-j", "DROP"]
            for flag in ("-s", "-d")]


def block_forwarding(subnet: str) -> None:
    """netavark gives its networks Docker's outbound NAT (MASQUERADE, FORWARD accepts, ip_forward
    on). Benchmarks need none of it (clients on the host reach containers through OUTPUT, never
    FORWARD): drop everything forwarded from or to the subnet, ahead of netavark's rules."""
    for rule in forward_rules(subnet):
        while _ipt("-D", *rule).returncode == 0:
            pass
        _ipt("-I", rule[0], "1", *rule[1:], check=True)


def unblock_forwarding() -> int:
    rules = [r.split()[1:] for r in _ipt("-S", "FORWARD").stdout.decode().splitlines() if NO_FORWARD in r]
    for rule in rules:
        _ipt("-D", *rule)
    return len(rules)


def remove_networks_if_unused(engine: Engine, force: bool = False) -> list[str]:
    """Remove this state directory's podman networks when none of its containers is left, and undo
    what netavark changed on the host for them: ip_forward back to its value before (netavark turns
    it on), its shared chains if it created them for us."""
    removed: list[str] = []
    if engine.labelled("ps") and not force:
        return removed
    for net in engine.labelled("network"):
        engine.run("network", "rm", "-f", net, check=False)
        removed.append(f"podman network {net}")
    for f in engine.network_dir.glob("isobench-*.json") if engine.network_dir.exists() else []:
        f.unlink()
    if unblock_forwarding():
        removed.append("FORWARD drop rules")
    before = engine.dir / "host_before.json"
    if before.exists():
        was = json.loads(before.read_text())
        if IP_FORWARD.read_text().strip() != was["ip_forward"]:
            IP_FORWARD.write_text(was["ip_forward"] + "\n")
            removed.append(f"net.ipv4.ip_forward={was['ip_forward']} restored")
        if not was["netavark_chains"] and remove_netavark_skeleton():
            removed.append("netavark chains")
        before.unlink()
    return removed


# -- the drivers ------------------------------------------------------------------------------------
def _net_option(default: str) -> dict[str, Any]:
    return one_of(["nat", "host", "bridge"], default=default,
                  description="nat: a published port (-p) through netavark's DNAT on the private bridge's "
                              "address, a host port per instance (Docker NAT); host: --network host (the "
                              "host's ports); bridge: the container's own address on the private bridge")


STORAGE = one_of(["rootfs", "volume"], default="rootfs",
                 description="where /data lives: the container's layered filesystem (an overlay on the shared "
                             "image, the paper's AUFS) or a bind-mounted host directory (Docker volume)")


class OciDriver(Driver):
    """OCI containers through rootful podman with crun or runc."""

    kind = "oci"
    ORDER = 15
    FAMILY = "application container"
    OPTIONS = {"runtime": one_of(["crun", "runc"], default="crun",
                                 description="OCI runtime (Docker's own default is runc)"),
               "net": _net_option("nat"), "storage": STORAGE}
    NETWORK = {"default": "10.213.79.0/24", "description": "private subnet of the podman network isobench-oci "
                                                           "(bridge isobench2)"}
    PODMAN_NETWORK: ClassVar[str] = "isobench-oci"
    BRIDGE: ClassVar[str] = "isobench2"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.engine = Engine(self.paths)

    @classmethod
    def uses_subnet(cls, options: Mapping[str, Any]) -> bool:
        return options.get("net", cls.OPTIONS["net"]["default"]) != "host"

    def runtime_path(self) -> str:
        return shutil.which(self.option("runtime")) or self.option("runtime")

    def availability(self) -> Availability:
        if shutil.which("podman") is None:
            return Availability(False, "podman not found: install podman (./install.sh does)", required=True)
        runtime = self.option("runtime")
        if shutil.which(runtime) is None:
            return Availability(False, f"OCI runtime {runtime} not found: install the '{runtime}' package "
                                       f"(./install.sh does)", required=True)
        if runtime == "crun":
            # a property of the host, not an installation problem: skipped with the reason (the
            # config's options carry their defaults, so a named crun cannot be told from the default)
            blocked = crun_blocked()
            if blocked:
                return Availability(False, blocked)
        return Availability(True)

    def ensure_network(self) -> str:
        """The kind's podman network (netavark config file of our bridge name); return its gateway.
        Call with the engine lock held."""
        self.engine.ensure()
        before = self.engine.dir / "host_before.json"
        if not before.exists():
            before.write_text(json.dumps({"ip_forward": IP_FORWARD.read_text().strip(),
                                          "netavark_chains": netavark_chains_exist()}))
        f = self.engine.network_dir / f"{self.PODMAN_NETWORK}.json"
        want = network_json(self.PODMAN_NETWORK, self.BRIDGE, str(self.subnet), self.engine.state)
        if not f.exists() or json.loads(f.read_text()) != want:
            f.write_text(json.dumps(want, indent=1))
        return want["subnets"][0]["gateway"]

    def start(self, name: str) -> Instance:
        avail = self.availability()
        if not avail.available:
            raise Unavailable(f"environment {self.env}: {avail.reason}")
        self.engine.ensure()
        remove_container(self.engine, name)
        remove_tree(self.engine.instances / name)
        return OciInstance(name, self)

    def provision(self) -> dict[str, Any]:
        self.engine.ensure()
        return {"podman": tool_version(["podman", "--version"]),
                "runtime": self.option("runtime"),
                "runtime_version": tool_version([self.option("runtime"), "--version"]),
                "network_backend": "netavark", "cgroup_manager": "cgroupfs", "rootfs": "overlay on the shared image"}

    def settings(self) -> dict[str, Any]:
        return {"driver": self.kind, "runtime": self.option("runtime"), "net": self.option("net"),
                "storage": self.option("storage"), "cgroup_layout": cgroup_layout(),
                "cpus": self.limits.cpus, "memory_mib": self.limits.memory_mib}

    @classmethod
    def cleanup_stale(cls, paths: StatePaths) -> list[str]:
        engine = Engine(paths)
        removed: list[str] = []
        for name in engine.labelled("ps"):
            remove_container(engine, name)
            removed.append(f"podman container {name}")
        for cid in runsc_sandboxes(engine):
            run(["runsc", f"--root={engine.runsc_root}", "delete", "-force", cid], check=False, timeout=60)
            removed.append(f"runsc sandbox {cid[:12]}")
        for pid in conmon_pids(engine):
            try:
                os.kill(pid, signal.SIGKILL)
                removed.append(f"conmon {pid}")
            except ProcessLookupError:
                pass
        if engine.instances.exists():
            for d in sorted(engine.instances.iterdir()):
                if d.name.startswith(NAME_PREFIX):
                    remove_tree(d)
                    removed.append(f"oci instance dir {d.name}")
        if engine.dir.exists():
            with engine.lock():
                removed += remove_networks_if_unused(engine, force=True)
        for ctrl in CGROUP_ROOT.iterdir() if CGROUP_ROOT.exists() else []:
            parent = ctrl / CGROUP_PARENT
            for d in [*sorted(parent.glob("*/")), parent] if parent.is_dir() else []:
                try:
                    d.rmdir()
                except OSError:
                    pass
        return removed


def crun_blocked() -> str:
    """Why crun cannot run containers here ('' if it can): crun refuses a hybrid cgroup layout
    whose cgroup2 hierarchy has controllers (measured: 'cgroups in hybrid mode not supported, drop
    all controllers from cgroupv2')."""
    unified = CGROUP_ROOT / "unified" / "cgroup.controllers"
    if cgroup_layout() == "v1" and unified.exists() and unified.read_text().split():
        return (f"crun refuses this host's hybrid cgroup layout (controllers on the cgroup2 hierarchy: "
                f"{' '.join(unified.read_text().split())}); use runtime: runc")
    return ""


def tool_version(argv: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(argv), capture_output=True, timeout=30).stdout.decode()
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (out.strip().splitlines() or [""])[0]


def netns_rmem_default() -> bool:
    """Whether net.core.rmem_default exists in a new network namespace (namespaced on recent
    kernels). runsc 20221219 takes its presence for the root namespace and refuses to set up its
    own network stack there."""
    proc = run(["unshare", "-n", "test", "-e", "/proc/sys/net/core/rmem_default"], check=False, timeout=30)
    return proc.returncode == 0


class GvisorDriver(OciDriver):
    """gVisor: podman with runsc as the OCI runtime (the same containers as ``oci`` otherwise)."""

    kind = "gvisor"
    ORDER = 16
    FAMILY = "sandbox"
    OPTIONS = {"platform": one_of(["ptrace", "systrap", "kvm"], default="ptrace",
                                  description="how the gVisor Sentry intercepts system calls (ptrace works in a "
                                              "VM; systrap is newer than Debian 12's runsc; kvm needs /dev/kvm)"),
               "netstack": one_of(["sandbox", "host"], default="sandbox",
                                  description="sandbox: gVisor's own network stack (its default); host: the "
                                              "Sentry uses the container's network namespace through host "
                                              "sockets (runsc --network=host)"),
               "net": _net_option("nat"), "storage": STORAGE}
    NETWORK = {"default": "10.213.80.0/24", "description": "private subnet of the podman network isobench-gvisor "
                                                           "(bridge isobench3)"}
    PODMAN_NETWORK = "isobench-gvisor"
    BRIDGE = "isobench3"

    def netstack(self) -> str:
        # gVisor's own stack cannot be used in the host's network namespace (runsc refuses it)
        return "host" if self.option("net") == "host" else self.option("netstack")

    def runtime_path(self) -> str:
        return str(self.engine.runsc_wrapper(self.option("platform"), self.netstack()))

    def availability(self) -> Availability:
        if shutil.which("podman") is None:
            return Availability(False, "podman not found: install podman (./install.sh does)", required=True)
        if shutil.which("runsc") is None:
            return Availability(False, "runsc not found: install the 'runsc' package (./install.sh does)",
                                required=True)
        # a platform other than ptrace (which every runsc has) is a choice: where it cannot run, the
        # environment's jobs fail with the reason (as KVM's accel: kvm); gVisor's own network stack
        # (the default) that cannot start here is skipped with its reason
        platform = self.option("platform")
        offered = runsc_platforms(tool_help(["runsc", "flags"]))
        if platform not in offered:
            return Availability(False, f"this runsc ({tool_version(['runsc', '--version'])}) has no {platform} "
                                       f"platform (it offers {', '.join(offered) or 'none'})", required=True)
        if platform == "kvm" and not os.access("/dev/kvm", os.R_OK | os.W_OK):
            return Availability(False, "gVisor platform kvm needs /dev/kvm, which this host does not have",
                                required=True)
        if self.netstack() == "sandbox" and netns_rmem_default():
            return Availability(False, "runsc 20221219 cannot set up its network stack on this kernel "
                                       f"({os.uname().release}: net.core.rmem_default exists in every network "
                                       "namespace, which it takes for the host's); use netstack: host")
        return Availability(True)

    def provision(self) -> dict[str, Any]:
        self.engine.ensure()
        return {"podman": tool_version(["podman", "--version"]), "runtime": "runsc",
                "runtime_version": tool_version(["runsc", "--version"]), "platform": self.option("platform"),
                "netstack": self.netstack(), "network_backend": "netavark", "cgroup_manager": "cgroupfs",
                "rootfs": "overlay on the shared image"}

    def settings(self) -> dict[str, Any]:
        return {"driver": self.kind, "runtime": "runsc", "platform": self.option("platform"),
                "netstack": self.netstack(), "net": self.option("net"), "storage": self.option("storage"),
                "cgroup_layout": cgroup_layout(), "cpus": self.limits.cpus, "memory_mib": self.limits.memory_mib}


def tool_help(argv: Sequence[str]) -> str:
    try:
        proc = subprocess.run(list(argv), capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (proc.stdout + proc.stderr).decode(errors="replace")
