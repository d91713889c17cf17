"""The one environment-driver interface: start an instance, run commands, copy files, stop, describe.

Every environment (native, lxc, kvm, and the fake used by fast unit tests) implements it, and no
workload ever asks which driver runs it. A workload sees only an :class:`Instance`:

* ``exec(argv)`` runs a command inside and returns stdout, stderr and the exit code;
* ``spawn(argv)`` starts a background server inside (it dies with the instance);
* ``endpoint(port)`` says where a client *on the host* reaches that server (loopback for native,
  the container's address on the private bridge, a DNAT'ed host address, the guest's address on
  the private libvirt network...);
* ``copy_in``/``copy_out`` move files; ``describe()`` says what the instance sees from inside;
* ``stop()`` tears everything down and is safe to call more than once.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .. import PREFIX
from ..errors import BenchError, InstanceError

log = logging.getLogger("isobench")

#: the working directory every workload uses inside an environment; the driver decides what backs
#: it (a host directory for native and LXC volumes, the container rootfs, the guest disk).
DATA_DIR = "/data"
GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: every host object a driver creates (instance, container, domain, network...) starts with this
NAME_PREFIX = f"{PREFIX}-"
#: the XML namespace of the ownership marker in libvirt <metadata> (domains and networks)
OWNER_NS = "https://isobench.invalid/xmlns/owner/1"
#: the file in an instance directory that carries its ownership marker
OWNER_FILE = "isobench-owner"
#: the labels of an environment that provides the host's CPU as it is (native, LXC)
DEFAULT_LABELS: dict[str, Any] = {"accel": "none", "emulated": False}


@dataclass(frozen=True)
class ExecResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def check(self, what: str = "") -> ExecResult:
        """Raise a one-line InstanceError unless the command succeeded."""
        if self.returncode != 0:
            tail = (self.stderr.strip().splitlines() or self.stdout.strip().splitlines() or [""])[-1]
            label = what or shlex.join(self.argv)[:120]
            raise InstanceError(f"{label}: exit {self.returncode}: {tail[:300]}")
        return self


@dataclass(frozen=True)
class Endpoint:
    """Where a client on the host connects to reach a port served inside an instance."""
    host: str
    port: int


@dataclass(frozen=True)
class Limits:
    """Resources every non-native environment gets (LXC cgroup limits = KVM vCPUs and memory)."""
    cpus: int
    memory_mib: int

    def cpuset(self) -> str:
        return "0" if self.cpus == 1 else f"0-{self.cpus - 1}"


@dataclass(frozen=True)
class Availability:
    """Whether an environment can run on this host, and if not why (never an exception)."""
    available: bool
    reason: str = ""
    #: labels recorded with every cell of this environment (e.g. accel=tcg, emulated=True); the
    #: defaults (DEFAULT_LABELS) are filled in
    labels: dict[str, Any] = field(default_factory=dict)
    #: the config asked for exactly this (e.g. ``accel: kvm``): if unavailable, the environment's
    #: jobs fail with ``reason`` instead of the environment being skipped
    required: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", {**DEFAULT_LABELS, **self.labels})

    def as_dict(self) -> dict[str, Any]:
        return {"available": self.available, "reason": self.reason, "labels": dict(self.labels),
                "required": self.required}


@dataclass(frozen=True)
class EnvSpec:
    """Everything that defines an environment, as one value: what the config resolves and a rule
    passes to its script (``to_param``/``from_param``, the JSON-able form Snakemake compares).

    ``limits`` is None for native (never limited); ``subnet`` is set only when the environment uses
    its driver's private network (Driver.uses_subnet)."""
    env: str
    kind: str
    options: Mapping[str, Any]
    limits: Limits | None = None
    subnet: str | None = None

    def to_param(self) -> dict[str, Any]:
        param: dict[str, Any] = {"env": self.env, "driver": self.kind, **self.options}
        if self.limits is not None:
            param["limits"] = {"cpus": self.limits.cpus, "memory_mib": self.limits.memory_mib}
        if self.subnet is not None:
            param["network"] = {f"{self.kind}_subnet": self.subnet}
        return param

    @classmethod
    def from_param(cls, param: Mapping[str, Any]) -> EnvSpec:
        p = dict(param)
        env, kind = p.pop("env"), p.pop("driver")
        lim = p.pop("limits", None)
        subnet = (p.pop("network", None) or {}).get(f"{kind}_subnet")
        return cls(env, kind, p, Limits(lim["cpus"], lim["memory_mib"]) if lim else None, subnet)


@dataclass(frozen=True)
class StatePaths:
    """Host locations the pipeline owns; everything under ``root`` is the project's."""
    root: Path

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def instances(self) -> Path:
        return self.root / "instances"

    @property
    def corpora(self) -> Path:
        return self.root / "corpora"

    def instance_dir(self, name: str) -> Path:
        return self.instances / name


def owner_marker(paths: StatePaths) -> str:
    """What ties a host object to this project and its state_dir: ``isobench:<state_dir>`` (the
    bridge's alias, a comment on every firewall rule, a line of each container config, a file in
    each instance directory; libvirt objects carry the state_dir in their <metadata>). Cleanup removes
    only objects with the marker of its own state_dir, and, from before markers existed, objects
    with the old name pattern and a path under that state_dir."""
    return f"{PREFIX}:{paths.root}"


def mark_dir(directory: Path, paths: StatePaths) -> None:
    """Write the ownership marker into an instance directory the driver just made."""
    (directory / OWNER_FILE).write_text(owner_marker(paths) + "\n")


def is_marked_dir(directory: Path, paths: StatePaths) -> bool:
    """Whether an instance directory carries this state_dir's marker."""
    try:
        return (directory / OWNER_FILE).read_text().strip() == owner_marker(paths)
    except OSError:
        return False


def is_under(path: str | Path, root: Path) -> bool:
    """Whether ``path`` (as written, not resolved) is ``root`` or below it."""
    p, r = str(path).rstrip("/"), str(root).rstrip("/")
    return p == r or p.startswith(r + "/")


def hostname_for(name: str) -> str:
    """A valid host name (RFC 1123: letters, digits, hyphens; at most 63) for an instance name.

    Instance names carry the environment name, which may hold underscores; tools that parse host
    names refuse those (Open MPI's mpirun aborts with an ORTE internal error), so the name an
    environment shows to its programs maps every other character to a hyphen."""
    label = "".join(c if c.isascii() and (c.isalnum() or c == "-") else "-" for c in name.lower())
    return label[:63].strip("-") or "isobench"


class Instance(ABC):
    """A running environment. Use as a context manager so ``stop()`` runs on every path."""

    def __init__(self, name: str):
        self.name = name
        self._stopped = False

    # -- commands -------------------------------------------------------------------------
    @abstractmethod
    def _exec(self, argv: Sequence[str], timeout: float, input: bytes | None) -> tuple[int, bytes, bytes]:
        """Run argv inside; return (exit code, stdout, stderr). Raise InstanceError on timeout."""

    def exec(self, argv: Sequence[str], *, timeout: float = 600, input: bytes | None = None) -> ExecResult:
        t0 = time.monotonic()
        rc, out, err = self._exec(list(argv), timeout, input)
        res = ExecResult(tuple(argv), rc, out.decode(errors="replace"), err.decode(errors="replace"),
                         time.monotonic() - t0)
        log.debug("%s: %s -> %d (%.3fs)", self.name, shlex.join(argv)[:200], rc, res.seconds)
        return res

    def _host_exec(self, cmd: Sequence[str], timeout: float, input: bytes | None,
                   what: str) -> tuple[int, bytes, bytes]:
        """Run a host command that enters the instance (chroot, lxc-attach); on timeout kill its
        whole process group and raise."""
        proc = subprocess.Popen(list(cmd), stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise InstanceError(f"{self.name}: command timed out after {timeout:.0f}s: {what}") from None
        return proc.returncode, out, err

    def sh(self, script: str, *, timeout: float = 600, input: bytes | None = None) -> ExecResult:
        """Run a POSIX shell snippet inside."""
        return self.exec(["/bin/sh", "-c", script], timeout=timeout, input=input)

    def spawn(self, argv: Sequence[str], *, tag: str) -> None:
        """Start a long-running server inside, detached; its output goes to /tmp/<tag>.log inside.

        Servers are reaped by ``stop()``; callers never need to kill them.
        """
        cmd = shlex.join(argv)
        self.sh(f"nohup setsid {cmd} </dev/null >/tmp/{tag}.log 2>&1 & echo $! >/tmp/{tag}.pid",
                timeout=60).check(f"start {tag} in {self.name}")

    # -- files ------------------------------------------------------------------------------
    def copy_in(self, src: Path, dst: str) -> None:
        """Copy a host file into the instance (default: stream it through ``cat``)."""
        self.exec(["/bin/sh", "-c", f"cat > {shlex.quote(dst)}"], input=Path(src).read_bytes(),
                  timeout=600).check(f"copy {src} into {self.name}:{dst}")

    def copy_out(self, src: str, dst: Path) -> None:
        res = self.exec(["/bin/cat", src], timeout=600).check(f"copy {self.name}:{src} out")
        Path(dst).write_text(res.stdout)

    # -- networking ---------------------------------------------------------------------------
    @abstractmethod
    def endpoint(self, port: int) -> Endpoint:
        """Where a host-side client reaches ``port`` served inside this instance."""

    @property
    @abstractmethod
    def bind_address(self) -> str:
        """The address a server inside should listen on (never the host's other interfaces)."""

    # -- health, description and teardown --------------------------------------------------
    def alive(self) -> bool:
        """Whether the instance is still running (checked after every iteration: a container or
        guest killed mid-cell must fail the cell, not yield a number)."""
        return True

    def cpu_seconds(self) -> float | None:
        """CPU seconds the environment itself has used so far (a counter: the difference over an
        iteration is its CPU cost there), or None where it cannot be told apart from the host's
        (native: the host's own counters are the cost)."""
        return None

    def describe(self) -> dict[str, Any]:
        """What the instance sees from inside: CPUs, memory, kernel, CPU model."""
        script = ("echo nproc=$(nproc); echo kernel=$(uname -r); "
                  "awk '/MemTotal/ {print \"mem_kib=\" $2}' /proc/meminfo; "
                  "awk -F': ' '/model name/ {print \"cpu_model=\" $2; exit}' /proc/cpuinfo; "
                  "m=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || "
                  "cat /sys/fs/cgroup/memory.max 2>/dev/null); echo cgroup_mem=$m")
        res = self.sh(script, timeout=120).check(f"describe {self.name}")
        seen: dict[str, Any] = {}
        for line in res.stdout.splitlines():
            key, _, value = line.partition("=")
            if key:
                seen[key] = value.strip()
        if "nproc" in seen:
            seen["nproc"] = int(seen["nproc"])
        if seen.get("mem_kib", "").isdigit():
            seen["mem_mib"] = int(seen.pop("mem_kib")) // 1024
        return seen

    @abstractmethod
    def _teardown(self) -> None:
        """Remove everything this instance created on the host. Must tolerate partial starts."""

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._teardown()

    def __enter__(self) -> Instance:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Driver(ABC):
    """One kind of environment, owning everything platform-specific about it. Constructed from a
    named environment of the config (:class:`EnvSpec`, through ``isobench.drivers.create``).

    The pipeline asks a driver only what this interface offers: whether it can run here
    (``availability``, never raising), what it needs built once (``provision``), instances
    (``start``), whether an instance got what it was given (``check_resources``), its settings as
    recorded, and, for the whole kind, removing leftovers (``cleanup_stale``) and stopping the
    daemons it started (``release``)."""

    kind: ClassVar[str]
    #: JSON-schema properties of this driver's options in ``environments.<name>`` (besides driver)
    OPTIONS: ClassVar[dict[str, Any]] = {}
    #: the private host-only network this kind creates, if any: ``network.<kind>_subnet`` in the
    #: config ({"default": "10.x.y.0/24", "description": ...})
    NETWORK: ClassVar[dict[str, str] | None] = None
    #: whether instances run under the configured ``limits`` (native: never limited, as in the paper)
    LIMITED: ClassVar[bool] = True
    #: where the kind is listed among the others (schema, network keys, the report): lower first
    ORDER: ClassVar[int] = 100
    #: what the report groups (and colours) the kind's environments by: "native", "system container",
    #: "application container", "sandbox" or "virtual machine"
    FAMILY: ClassVar[str] = "system container"

    def __init__(self, env: str, options: Mapping[str, Any], limits: Limits, paths: StatePaths,
                 image: dict[str, Any], *, subnet: str | None = None):
        self.env = env
        self.options = dict(options)
        self.limits = limits
        self.paths = paths
        self.image = image
        self.subnet = subnet if subnet is not None else (self.NETWORK or {}).get("default")

    def option(self, key: str) -> Any:
        """An option's value, or its schema default."""
        return self.options.get(key, self.OPTIONS[key].get("default"))

    def availability(self) -> Availability:
        """Whether this environment can run here, and why not; cheap, needs no daemon, never raises."""
        return Availability(True)

    @classmethod
    def uses_subnet(cls, options: Mapping[str, Any]) -> bool:
        """Whether instances with these options use this kind's private network (NETWORK): only
        then is the subnet part of the environment's identity."""
        return False

    def provision(self) -> dict[str, Any]:
        """Build (or find cached) what every instance needs beyond the shared image; return its
        manifest (recorded in results/provision/<env>.json). Called only when available."""
        return {}

    def check_capacity(self) -> None:
        """Raise BenchError (one line) when this host cannot give the limits: on one machine the
        config is refused first; a cluster node says so when it provisions."""
        why = limits_misfit(self.limits) if self.LIMITED else None
        if why:
            raise BenchError(f"environment {self.env}: {why}")

    @abstractmethod
    def start(self, name: str) -> Instance:
        """Start a fresh instance called ``name`` (removing a stale one of that name first)."""

    def held_memory_mib(self) -> int:
        """Host memory an instance holds while it is alive, whatever runs in it (a guest's RAM; 0
        where limits are only a cap, as for containers): a round keeps only as many instances
        alive together as the host's free memory allows."""
        return 0

    def check_resources(self, inside: dict[str, Any]) -> None:
        """Raise InstanceError unless the instance sees the CPUs it was given (``inside`` is
        Instance.describe()); a driver whose instances see more checks more."""
        if inside.get("nproc") != self.limits.cpus:
            raise InstanceError(f"environment {self.env}: sees {inside.get('nproc')} CPUs, configured "
                                f"{self.limits.cpus}")

    def settings(self) -> dict[str, Any]:
        """The environment's settings as recorded with every cell (the report's methods section)."""
        return {"driver": self.kind, **self.options}

    @classmethod
    def cleanup_stale(cls, paths: StatePaths) -> list[str]:
        """Remove every host object of this kind the project left behind; return what was removed."""
        return []

    @classmethod
    def release(cls, paths: StatePaths) -> list[str]:
        """Stop the host daemons this kind started for the run (none are left behind); return what
        was stopped."""
        return []


def host_capacity() -> tuple[int, int]:
    """(CPUs, memory in MiB) of the host this process runs on."""
    mem_kib = 0
    try:
        with open("/proc/meminfo") as f:
            mem_kib = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
    except (OSError, StopIteration, ValueError):
        pass
    return os.cpu_count() or 1, mem_kib // 1024


def limits_misfit(limits: Limits, capacity: tuple[int, int] | None = None) -> str | None:
    """Why this host cannot give ``limits`` (``limits.<key>: ...``), or None: the cpuset 0..cpus-1
    needs those CPUs, and a guest or container with more memory than the host is killed or swaps."""
    host_cpus, host_mib = capacity or host_capacity()
    if limits.cpus > host_cpus:
        return f"limits.cpus: {limits.cpus} is more than this host's {host_cpus} CPUs"
    if host_mib and limits.memory_mib > host_mib:
        return f"limits.memory_mib: {limits.memory_mib} is more than this host's memory ({host_mib} MiB)"
    return None


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads (/proc/<pid>/stat utime, stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until(predicate, *, timeout: float, interval: float = 0.05, what: str) -> None:
    """Poll ``predicate`` until true or raise a clear timeout error."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(interval)
    raise InstanceError(f"timed out after {timeout:.0f}s waiting for {what}")
