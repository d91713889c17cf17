"""KVM virtual machines through libvirt (direct kernel boot, guest agent, host-only network).

Every guest boots the artifacts of :mod:`.image` (vmlinux, busybox initramfs, base
disk made from the shared image rootfs) as a transient domain: its root disk is a qcow2 overlay of
the read-only base, and /data is a separate virtio disk (vdb, qcow2 or raw, ``cache=none
io=native``), so I/O workloads hit a virtio block device as in the paper. Commands run through the
QEMU guest agent (guest-exec); files and servers go over the private libvirt network
``isobench-net`` (bridge isobench1, host-only: no forwarding, no NAT, no DHCP), where the guest
has a static address from :func:`hostnet.address_for`.

Acceleration: hardware KVM where the host has it, KVM with a user-supplied PVM guest kernel on a
PVM host, otherwise unavailable, unless the config opts in to TCG emulation (labelled emulated:
functional tests of the pipeline, never performance results). ``tuning: tuned`` is the paper's
tuned KVM: host CPU model, vCPUs pinned 1:1, vhost-net where KVM and /dev/vhost-net allow it (the
settings record the CPU mode and network backend actually used).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from ...errors import InstanceError, Unavailable
from ...schematypes import integer, one_of
from ...util import run
from .. import hostnet
from ..base import (
    NAME_PREFIX,
    Availability,
    Driver,
    Endpoint,
    Instance,
    StatePaths,
    is_under,
    mark_dir,
    process_cpu_seconds,
)
from . import daemon as libvirtd
from .agent import AgentInstance
from .domain import (
    BRIDGE,
    NETWORK,
    choose_accel,
    cpu_mode,
    disk_sources,
    domain_xml,
    guest_cmdline,
    host_probe,
    host_tsc_khz,
    network_xml,
    networks_used,
    owner_of,
    uses_vhost,
)
from .image import ensure_guest_artifacts

log = logging.getLogger("isobench")

DNSMASQ_STATE_DIR = Path("/var/lib/libvirt/dnsmasq")
#: libvirt's per-domain QEMU log (<name>.log); removed with the domain (the console log under the
#: instance directory is what the driver reports on a failed boot)
QEMU_LOG_DIR = Path("/var/log/libvirt/qemu")
LIBVIRT_RUN_DIR = Path("/run/libvirt/qemu")
#: sparse: the disk costs only what the guest writes into it
DATA_DISK_GIB = 32


# -- libvirt objects ---------------------------------------------------------------------------
def instance_dir(paths: StatePaths, name: str) -> Path:
    """The suffix tells KVM instance directories from native ones of the same prefix."""
    return paths.instances / f"{name}.kvm"


def _kill_qemu(name: str) -> None:
    """SIGKILL the QEMU process of one of our (disposable) guests. libvirt's destroy sends SIGTERM
    and polls every 200 ms while QEMU shuts down in order (1.2-2 s under TCG); a killed QEMU is
    gone at once and destroy() then only tidies up."""
    try:
        pid = int((LIBVIRT_RUN_DIR / f"{name}.pid").read_text().strip())
        if Path(f"/proc/{pid}/cmdline").read_bytes().find(f"guest={name}".encode()) < 0:
            return                      # not (or no longer) this guest's QEMU: leave it to destroy()
        os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError):
        pass


def is_ours(xml: str, name: str, paths: StatePaths) -> bool:
    """Whether a libvirt domain (its XMLDesc) was made for this state_dir: its <metadata> marker
    names it, or (made before markers) it has the old name and a disk under the state_dir. Anyone
    else's domain, whatever its name, is not."""
    owner = owner_of(xml)
    if owner is not None:
        return owner == str(paths.root)
    return name.startswith(NAME_PREFIX) and any(is_under(f, paths.root) for f in disk_sources(xml))


def _xml(obj) -> str:
    try:
        return obj.XMLDesc(0)
    except libvirtd.libvirt.libvirtError:
        return ""


def destroy_domain(conn, name: str, paths: StatePaths) -> bool:
    """Stop (destroy) the domain ``name`` if it is this state_dir's; return whether it was
    running. Someone else's domain of that name is left alone (InstanceError)."""
    try:
        dom = conn.lookupByName(name)
        if not is_ours(_xml(dom), name, paths):
            raise InstanceError(f"a libvirt domain {name} exists and is not this project's (no isobench owner "
                                f"<metadata> for {paths.root}); rename or remove it")
        _kill_qemu(name)
        dom.destroy()
    except libvirtd.libvirt.libvirtError as e:
        if e.get_error_code() in (libvirtd.libvirt.VIR_ERR_NO_DOMAIN, libvirtd.libvirt.VIR_ERR_OPERATION_INVALID):
            return False  # gone already, or not running (our domains are transient: nothing to undefine)
        raise
    return True


def network_is_ours(net, paths: StatePaths) -> bool:
    """The network's marker names this state_dir, or (made before markers) it has none."""
    owner = owner_of(_xml(net))
    return owner is None or owner == str(paths.root)


def ensure_network(conn, subnet: str, paths: StatePaths) -> None:
    # libvirt records the guests' MACs in its dnsmasq directory even when, as here, it runs no
    # dnsmasq, but creates that directory only when it starts one: createXML would fail without it
    DNSMASQ_STATE_DIR.mkdir(parents=True, exist_ok=True)
    try:
        net = conn.networkLookupByName(NETWORK)
    except libvirtd.libvirt.libvirtError:
        conn.networkCreateXML(network_xml(subnet, str(paths.root)))
        log.info("created libvirt network %s (bridge %s, %s, host-only)", NETWORK, BRIDGE, subnet)
        return
    if not network_is_ours(net, paths):
        raise InstanceError(f"libvirt network {NETWORK} exists and is not this state_dir's (its owner is "
                            f"{owner_of(_xml(net))}); remove it or run that state_dir's cleanup")
    if not net.isActive():
        net.create()


def remove_network_if_unused(conn, paths: StatePaths) -> bool:
    """Destroy the network if it is this state_dir's and no domain at all is attached to it."""
    try:
        net = conn.networkLookupByName(NETWORK)
    except libvirtd.libvirt.libvirtError:
        return False
    if not network_is_ours(net, paths):
        return False
    if any(NETWORK in networks_used(_xml(d)) for d in conn.listAllDomains() if d.isActive()):
        return False
    try:
        net.destroy()
    except libvirtd.libvirt.libvirtError:
        return False
    return True


def qemu_log_is_ours(log_file: Path, paths: StatePaths) -> bool:
    """Whether libvirt's log of a domain that is gone names a disk under this state_dir's
    instances (QEMU's command line, which libvirt writes first)."""
    try:
        with open(log_file, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return False
    return f"{paths.instances}/".encode() in head


def make_data_disk(path: Path, fmt: str) -> None:
    """An empty ext4 filesystem for /data, made on the host so the guest mounts it at boot."""
    raw = path.with_suffix(".raw")
    with open(raw, "wb") as f:
        f.truncate(DATA_DISK_GIB << 30)
    # a fresh sparse file reads as zeros: mke2fs's discard marks the inode tables zeroed and the
    # journal needs no zeroing, so the guest kernel starts no lazy-init writes during I/O benchmarks
    run(["mkfs.ext4", "-q", "-F", "-L", "isobench-data", "-E", "lazy_journal_init=1", str(raw)])
    if fmt == "qcow2":
        run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(path)])
        raw.unlink()


class KvmInstance(AgentInstance):
    def __init__(self, name: str, driver: KvmDriver, artifacts: dict[str, Any]):
        super().__init__(name)
        self.dir = instance_dir(driver.paths, name)
        self.settings = driver.settings()
        self.accel = self.settings["accel"]
        others = (d for d in driver.paths.instances.glob("*.kvm") if d != self.dir)
        self.ip, self.mac = hostnet.address_for(name, driver.subnet, taken=hostnet.addresses_held(others))
        self.saved_console = driver.paths.instances / f"{name}.console.log"
        self.paths = driver.paths
        self._conn = self._dom = None
        try:
            self._conn = libvirtd.connect()
            xml = self._create(driver, artifacts)
            with libvirtd.host_lock("kvm-net"):  # not while a teardown removes the network
                ensure_network(self._conn, driver.subnet, driver.paths)
                self._dom = self._conn.createXML(xml, 0)
            self._wait_agent(driver.option("boot_timeout_s"))
        except BaseException:
            self._teardown()
            raise

    @property
    def console_log(self) -> Path:
        return self.dir / "console.log"

    def _create(self, driver: KvmDriver, artifacts: dict[str, Any]) -> str:
        self.dir.mkdir(parents=True, mode=0o700)
        mark_dir(self.dir, driver.paths)
        (self.dir / hostnet.ADDRESS_FILE).write_text(self.ip)
        root = self.dir / "root.qcow2"
        run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", artifacts["base_disk"], str(root)])
        data = self.dir / f"data.{self.settings['disk']}"
        make_data_disk(data, self.settings["disk"])
        return domain_xml(name=self.name, accel=self.accel, tuning=self.settings["tuning"],
                          disk=self.settings["disk"], cpus=driver.limits.cpus,
                          memory_mib=driver.limits.memory_mib, kernel=artifacts["vmlinux"],
                          initrd=artifacts["initramfs"], cmdline=guest_cmdline(self.ip, driver.subnet,
                                                host_tsc_khz() if self.accel == "tcg" else None),
                          root_disk=root, data_disk=data, console_log=self.console_log, mac=self.mac,
                          vhost=self.settings["net_backend"] == "vhost", state_dir=str(driver.paths.root))

    def _wait_agent(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not self.alive():
                self._keep_console()
                raise InstanceError(f"guest {self.name} stopped while booting (accel={self.accel}); "
                                    f"console log: {self.saved_console}")
            try:
                self._agent("guest-ping", timeout=1, booting=True)
                return
            except InstanceError:
                time.sleep(0.02)
        self._keep_console()
        raise InstanceError(f"guest {self.name} did not answer the agent within {timeout:.0f} s "
                            f"(accel={self.accel}); console log: {self.saved_console}")

    def cpu_seconds(self) -> float | None:
        """The guest's QEMU process (every vCPU and I/O thread) plus its vhost-net kernel workers
        (``vhost-<qemu pid>``): everything the host spends on running the guest."""
        try:
            pid = int((LIBVIRT_RUN_DIR / f"{self.name}.pid").read_text().strip())
            total = process_cpu_seconds(pid)
        except (OSError, ValueError):
            return None
        for comm in Path("/proc").glob("[0-9]*/comm"):
            try:
                if comm.read_text().strip() == f"vhost-{pid}":
                    total += process_cpu_seconds(int(comm.parent.name))
            except (OSError, ValueError):
                continue
        return total

    def alive(self) -> bool:
        try:
            return bool(self._dom.isActive())
        except libvirtd.libvirt.libvirtError:  # a transient domain that stopped is gone
            return False

    def _keep_console(self) -> None:
        """The instance directory goes with the teardown; the console log of a failed boot stays."""
        if self.console_log.exists():
            shutil.copyfile(self.console_log, self.saved_console)

    # -- networking, description, teardown ----------------------------------------------------------
    def endpoint(self, port: int) -> Endpoint:
        return Endpoint(self.ip, port)

    @property
    def bind_address(self) -> str:
        return self.ip

    def describe(self) -> dict[str, Any]:
        seen = super().describe()
        s = self.settings
        seen.update(accel=s["accel"], tuning=s["tuning"], disk=s["disk"], vcpus=s["cpus"],
                    memory_mib=s["memory_mib"], cpu_mode=s["cpu_mode"], net_backend=s["net_backend"],
                    address=self.ip)
        return seen

    def _teardown(self) -> None:
        if self._conn is not None:
            try:
                destroy_domain(self._conn, self.name, self.paths)
                (QEMU_LOG_DIR / f"{self.name}.log").unlink(missing_ok=True)
                with libvirtd.host_lock("kvm-net"):
                    remove_network_if_unused(self._conn, self.paths)
            except libvirtd.libvirt.libvirtError as e:  # libvirtd gone: the cleanup stage finishes the job
                log.warning("%s: could not remove the domain or network: %s", self.name, e.get_error_message())
            finally:
                self._conn.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _libvirt_leftovers() -> bool:
    """Whether libvirt's runtime state still lists our domains or network (while libvirtd is down)."""
    run_dir = Path("/run/libvirt")
    return any(run_dir.glob(f"qemu/{NAME_PREFIX}*.xml")) or (run_dir / "network" / f"{NETWORK}.xml").exists()


class KvmDriver(Driver):
    """KVM virtual machines through libvirt (TCG emulation only as an explicit, labelled opt-in)."""

    kind = "kvm"
    ORDER = 20
    FAMILY = "virtual machine"
    OPTIONS = {
        "accel": one_of(["auto", "kvm", "tcg"], default="auto", description=(
            "auto/kvm: hardware KVM (or KVM with guest_kernel on a PVM host), otherwise unavailable; tcg: QEMU "
            "emulation (~13% of native CPU speed), every result labelled emulated: for functional tests only")),
        "tuning": one_of(["untuned", "tuned"], default="untuned", description=(
            "untuned: QEMU's default CPU model, no pinning, userspace virtio-net; tuned (the paper's tuned KVM): "
            "host CPU model, vCPUs pinned 1:1 to host CPUs 0..n-1, vhost-net")),
        "disk": one_of(["qcow2", "raw"], default="qcow2",
                       description="image format of the /data disk (virtio, cache=none, io=native)"),
        "guest_kernel": {"type": ["string", "null"], "pattern": "^/", "default": None, "description": (
            "absolute path of an uncompressed vmlinux (PVH entry) to boot instead of the image's kernel; needed "
            "for KVM on a PVM host (a PVM guest kernel)")},
        "boot_timeout_s": integer(1, default=60,
                                  description="seconds from domain start until the guest agent must answer"),
    }

    NETWORK = {"default": "10.213.78.0/24",
               "description": "private subnet of the host-only libvirt network (isobench-net)"}

    @classmethod
    def uses_subnet(cls, options: dict[str, Any]) -> bool:
        return True

    def availability(self) -> Availability:
        explicit = self.option("accel") != "auto"     # asked for by name: unavailable is an error
        if libvirtd.libvirt is None:
            return Availability(False, "libvirt-python is not installed in the pipeline's environment",
                                required=explicit)
        missing = [t for t in ("libvirtd", "virtlogd", "qemu-system-x86_64", "qemu-img", "mkfs.ext4")
                   if shutil.which(t) is None]
        if missing:
            return Availability(False, f"{', '.join(missing)} not found; install libvirt-daemon-system, "
                                       f"qemu-system-x86 and qemu-utils (./install.sh does)", required=explicit)
        kernel = self.option("guest_kernel")
        if kernel is not None and not Path(kernel).is_file():
            return Availability(False, f"guest_kernel {kernel} does not exist", required=True)
        return choose_accel(self.option("accel"), host_probe(kernel))

    def provision(self) -> dict[str, Any]:
        """Build (or find cached) the guest's kernel, initramfs and base disk; return their manifest."""
        self.check_capacity()
        kernel = self.option("guest_kernel")
        return ensure_guest_artifacts(Path(self.image["rootfs"]), self.image["key"], self.paths.images,
                                      Path(kernel) if kernel else None)

    def start(self, name: str) -> Instance:
        avail = self.availability()
        if not avail.available:
            raise Unavailable(f"environment {self.env}: {avail.reason}")
        artifacts = self.provision()
        libvirtd.ensure_running(self.paths.root)
        conn = libvirtd.connect()
        try:
            destroy_domain(conn, name, self.paths)
        finally:
            conn.close()
        shutil.rmtree(instance_dir(self.paths, name), ignore_errors=True)
        self.paths.instances.mkdir(parents=True, exist_ok=True)
        return KvmInstance(name, self, artifacts)

    def held_memory_mib(self) -> int:
        """A guest's RAM is the host's while it runs (no ballooning, no overcommit here)."""
        return self.limits.memory_mib

    def settings(self) -> dict[str, Any]:
        labels = self.availability().labels
        accel, tuning = labels.get("accel", "unavailable"), self.option("tuning")
        vhost = uses_vhost(accel, tuning, Path("/dev/vhost-net").exists())
        return {"driver": self.kind, "accel": accel, "emulated": labels.get("emulated"), "tuning": tuning,
                "disk": self.option("disk"), "cpus": self.limits.cpus, "memory_mib": self.limits.memory_mib,
                "cpu_mode": cpu_mode(accel, tuning), "net_backend": "vhost" if vhost else "qemu",
                "guest_kernel": self.option("guest_kernel")}

    def check_resources(self, inside: dict[str, Any]) -> None:
        super().check_resources(inside)
        seen, want = int(inside.get("mem_mib", 0)), self.limits.memory_mib
        # the guest kernel reserves some memory for itself: accept up to 15% less than configured
        if not 0.85 * want <= seen <= want:
            raise InstanceError(f"environment {self.env}: guest sees {seen} MiB, configured {want} MiB")

    @classmethod
    def release(cls, paths: StatePaths) -> list[str]:
        """Stop libvirtd and virtlogd if the pipeline started them (a host's own daemons stay)."""
        return libvirtd.stop_started(paths.root)

    @classmethod
    def cleanup_stale(cls, paths: StatePaths) -> list[str]:
        """Stop this state_dir's domains (marked, or old-named with a disk under it), its network if
        nothing uses it, and remove its instance files and the libvirt logs of its guests. Anyone
        else's domain, network or log stays, whatever its name."""
        removed = []
        if libvirtd.libvirt is not None:
            if _libvirt_leftovers():  # libvirtd died with our guests running: it reattaches them on start
                libvirtd.ensure_running(paths.root)
            if libvirtd.answers():
                conn = libvirtd.connect()
                for dom in conn.listAllDomains():
                    name = dom.name()
                    if is_ours(_xml(dom), name, paths) and destroy_domain(conn, name, paths):
                        removed.append(f"libvirt domain {name}")
                with libvirtd.host_lock("kvm-net"):
                    if remove_network_if_unused(conn, paths):
                        removed.append(f"libvirt network {NETWORK}")
                live = {d.name() for d in conn.listAllDomains()}
                conn.close()
            else:
                live = {p.stem for p in (Path("/run/libvirt/qemu").glob("*.xml"))}
        else:
            live = set()
        logs = [p for p in QEMU_LOG_DIR.glob(f"{NAME_PREFIX}*.log")
                if p.name.removesuffix(".log") not in live and qemu_log_is_ours(p, paths)]
        leftovers = [*paths.instances.glob(f"{NAME_PREFIX}*.kvm"), *paths.instances.glob(f"{NAME_PREFIX}*.console.log"),
                     *paths.images.glob(".kvm-*.partial"), *logs]
        for p in sorted(leftovers):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(f"kvm file {p}")
        return removed
