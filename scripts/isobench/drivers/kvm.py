"""KVM virtual machines through libvirt (direct kernel boot, guest agent, host-only network).

Every guest boots the artifacts of :mod:`isobench.guestimage` (vmlinux, busybox initramfs, base
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

import base64
import ipaddress
import json
import logging
import os
import shutil
import signal
import socket
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Callable, Sequence

from .. import libvirtd
from ..errors import InstanceError, Unavailable
from ..guestimage import ensure_guest_artifacts
from ..util import run
from . import hostnet
from .base import GUEST_PATH, Availability, Driver, Endpoint, Instance, StatePaths

log = logging.getLogger("isobench")

NAME_PREFIX = "isobench-"
NETWORK = "isobench-net"
BRIDGE = "isobench1"
DNSMASQ_STATE_DIR = Path("/var/lib/libvirt/dnsmasq")
#: libvirt's per-domain QEMU log (<name>.log); removed with the domain (the console log under the
#: instance directory is what the driver reports on a failed boot)
QEMU_LOG_DIR = Path("/var/log/libvirt/qemu")
LIBVIRT_RUN_DIR = Path("/run/libvirt/qemu")
#: sparse: the disk costs only what the guest writes into it
DATA_DISK_GIB = 32
#: guest-file-write / input-data bigger than this wedges qemu-ga's channel until the domain restarts
AGENT_MAX_INPUT = 128 * 1024
#: guest port of copy_in/copy_out's nc (no workload serves on it)
COPY_PORT = 47000
GUEST_ENV = [f"PATH={GUEST_PATH}", "HOME=/root", "LC_ALL=C"]


# -- pure decisions ------------------------------------------------------------------------------
def host_probe(guest_kernel: str | None) -> dict[str, bool]:
    """What decides the acceleration: the KVM device, which KVM module, and a PVM guest kernel."""
    return {"dev_kvm": Path("/dev/kvm").exists(),
            **{m: Path(f"/sys/module/{m}").exists() for m in ("kvm_intel", "kvm_amd", "kvm_pvm")},
            "guest_kernel": guest_kernel is not None}


def choose_accel(requested: str, probe: dict[str, bool]) -> Availability:
    """TCG only when asked for; otherwise KVM if this host can run the guest at speed, or why not."""
    if requested == "tcg":
        return Availability(True, labels={"accel": "tcg", "emulated": True})
    if probe["dev_kvm"] and (probe["kvm_intel"] or probe["kvm_amd"]):
        return Availability(True, labels={"accel": "kvm", "emulated": False})
    if probe["dev_kvm"] and probe["kvm_pvm"] and probe["guest_kernel"]:
        return Availability(True, labels={"accel": "kvm", "emulated": False})
    hint = "set accel: tcg to run emulated"
    if not probe["dev_kvm"]:
        why = "no /dev/kvm"
    elif probe["kvm_pvm"]:
        # under PVM a stock kernel's supervisor code is emulated instruction by instruction, then hangs
        why = "/dev/kvm is PVM (kvm_pvm), which cannot boot a stock guest kernel"
        hint = "set guest_kernel to a PVM guest vmlinux, or accel: tcg to run emulated"
    else:
        why = "/dev/kvm exists but none of kvm_intel, kvm_amd, kvm_pvm is loaded"
    return Availability(False, reason=f"no usable KVM on this host ({why}); {hint}")


def cpu_mode(accel: str, tuning: str) -> str:
    """untuned: QEMU's default model; tuned: the host CPU (TCG refuses host-passthrough: 'maximum')."""
    if tuning == "untuned":
        return "default"
    return "host-passthrough" if accel == "kvm" else "maximum"


def uses_vhost(accel: str, tuning: str, vhost_net_device: bool) -> bool:
    """vhost-net needs KVM's ioeventfd/irqfd (libvirt ignores it for plain QEMU guests) and /dev/vhost-net."""
    return tuning == "tuned" and accel == "kvm" and vhost_net_device


def guest_cmdline(ip: str, subnet: str, tsc_khz: int | None = None) -> str:
    net = ipaddress.ip_network(subnet)
    gw = next(net.hosts())
    # panic=-1: if the initramfs fails, reboot at once, which ends the domain (on_reboot=destroy);
    # cryptomgr.notests: the boot-time self-tests of the crypto algorithms take 0.2-0.4 s under TCG
    # and change nothing once booted
    line = (f"console=ttyS0 net.ifnames=0 panic=-1 quiet cryptomgr.notests "
            f"bench.ip={ip}/{net.prefixlen} bench.gw={gw}")
    if tsc_khz:
        # under TCG without ACPI the guest finds no timer to calibrate its TSC against and falls
        # back to jiffies (4 ms resolution: fio latencies read 0 or 4 ms); TCG's TSC runs at the
        # host's rate, so tell the guest that rate. Hardware KVM guests use kvm-clock instead.
        line += f" tsc_early_khz={tsc_khz} tsc=reliable"
    return line


def host_tsc_khz() -> int | None:
    """The host's TSC rate in kHz (its 'cpu MHz', which is the TSC rate on constant-TSC CPUs)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return round(float(line.split(":")[1]) * 1000)
    except (OSError, ValueError):
        pass
    return None


def _el(parent: ET.Element, tag: str, text: str | None = None, **attrs: Any) -> ET.Element:
    e = ET.SubElement(parent, tag, {k: str(v) for k, v in attrs.items()})
    e.text = text
    return e


def domain_xml(*, name: str, accel: str, tuning: str, disk: str, cpus: int, memory_mib: int,
               kernel: str, initrd: str, cmdline: str, root_disk: Path, data_disk: Path,
               console_log: Path, mac: str, vhost: bool) -> str:
    """The libvirt domain of one guest (transient: created with createXML, gone when destroyed)."""
    dom = ET.Element("domain", type="kvm" if accel == "kvm" else "qemu")
    _el(dom, "name", name)
    _el(dom, "memory", str(memory_mib), unit="MiB")
    _el(dom, "vcpu", str(cpus), placement="static")
    if tuning == "tuned":
        tune = _el(dom, "cputune")
        for i in range(cpus):
            _el(tune, "vcpupin", vcpu=i, cpuset=i)
    boot = _el(dom, "os")
    _el(boot, "type", "hvm", arch="x86_64", machine="pc")
    _el(boot, "kernel", kernel)
    _el(boot, "initrd", initrd)
    _el(boot, "cmdline", cmdline)
    # no <acpi/>: probing ACPI costs ~1 s of boot under TCG; the kernel routes IRQs by MP tables
    _el(_el(dom, "features"), "apic")
    mode = cpu_mode(accel, tuning)
    if mode != "default":
        cpu = _el(dom, "cpu", mode=mode, migratable="off")
        if mode == "host-passthrough":
            # QEMU aborts setting MSR 0x10a (IA32_ARCH_CAPABILITIES) on some hosts (PVM); unused anyway
            _el(cpu, "feature", policy="disable", name="arch-capabilities")
    _el(dom, "clock", offset="utc")
    for event in ("on_poweroff", "on_reboot", "on_crash"):
        _el(dom, event, "destroy")
    dev = _el(dom, "devices")
    # the root overlay is thrown away after the run: no need to flush it
    for path, fmt, target, cache in ((root_disk, "qcow2", "vda", {"cache": "unsafe"}),
                                     (data_disk, disk, "vdb", {"cache": "none", "io": "native"})):
        d = _el(dev, "disk", type="file", device="disk")
        _el(d, "driver", name="qemu", type=fmt, **cache)
        _el(d, "source", file=path)
        _el(d, "target", dev=target, bus="virtio")
    nic = _el(dev, "interface", type="network")
    _el(nic, "mac", address=mac)
    _el(nic, "source", network=NETWORK)
    _el(nic, "model", type="virtio")
    # explicit both ways: libvirt would pick vhost by itself for KVM guests when it can
    _el(nic, "driver", name="vhost" if vhost else "qemu")
    _el(nic, "rom", bar="off")
    serial = _el(dev, "serial", type="file")
    _el(serial, "source", path=console_log)
    _el(serial, "target", port=0)
    chan = _el(dev, "channel", type="unix")
    _el(chan, "target", type="virtio", name="org.qemu.guest_agent.0")
    _el(_el(dev, "rng", model="virtio"), "backend", "/dev/urandom", model="random")
    _el(dev, "memballoon", model="none")
    _el(dev, "controller", type="usb", model="none")
    # QEMU runs as root and libvirt relabels nothing: it would otherwise chown the shared base disk
    # to libvirt-qemu (and not always back), and need every parent of the state dir traversable
    label = _el(dom, "seclabel", type="static", model="dac", relabel="no")
    _el(label, "label", "+0:+0")
    return ET.tostring(dom, encoding="unicode")


def network_xml(subnet: str) -> str:
    """Host-only: no <forward> (no NAT, no routing), no DHCP, no DNS (so no dnsmasq either)."""
    net = ipaddress.ip_network(subnet)
    root = ET.Element("network")
    _el(root, "name", NETWORK)
    _el(root, "bridge", name=BRIDGE, stp="off", delay=0)
    _el(root, "dns", enable="no")
    _el(root, "ip", address=next(net.hosts()), prefix=net.prefixlen)
    return ET.tostring(root, encoding="unicode")


# -- libvirt objects -------------------------------------------------------------------------------
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


def destroy_domain(conn, name: str) -> bool:
    try:
        dom = conn.lookupByName(name)
        if name.startswith(NAME_PREFIX):
            _kill_qemu(name)
        dom.destroy()
    except libvirtd.libvirt.libvirtError as e:
        if e.get_error_code() in (libvirtd.libvirt.VIR_ERR_NO_DOMAIN, libvirtd.libvirt.VIR_ERR_OPERATION_INVALID):
            return False  # gone already, or not running (our domains are transient: nothing to undefine)
        raise
    return True


def ensure_network(conn, subnet: str) -> None:
    # libvirt records the guests' MACs in its dnsmasq directory even when, as here, it runs no
    # dnsmasq, but creates that directory only when it starts one: createXML would fail without it
    DNSMASQ_STATE_DIR.mkdir(parents=True, exist_ok=True)
    try:
        net = conn.networkLookupByName(NETWORK)
    except libvirtd.libvirt.libvirtError:
        conn.networkCreateXML(network_xml(subnet))
        log.info("created libvirt network %s (bridge %s, %s, host-only)", NETWORK, BRIDGE, subnet)
        return
    if not net.isActive():
        net.create()


def remove_network_if_unused(conn) -> bool:
    if any(d.name().startswith(NAME_PREFIX) for d in conn.listAllDomains()):
        return False
    try:
        conn.networkLookupByName(NETWORK).destroy()
    except libvirtd.libvirt.libvirtError:
        return False
    return True


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


class AgentRefused(InstanceError):
    """The guest agent answered with an error (it is alive, the request failed)."""


class KvmInstance(Instance):
    def __init__(self, name: str, driver: "KvmDriver", artifacts: dict[str, Any]):
        super().__init__(name)
        self.dir = instance_dir(driver.paths, name)
        self.settings = driver.settings()
        self.accel = self.settings["accel"]
        self.ip, self.mac = hostnet.address_for(name, driver.subnet)
        self.saved_console = driver.paths.instances / f"{name}.console.log"
        self._conn = self._dom = None
        try:
            self._conn = libvirtd.connect()
            xml = self._create(driver, artifacts)
            with libvirtd.host_lock("kvm-net"):  # not while a teardown removes the network
                ensure_network(self._conn, driver.subnet)
                self._dom = self._conn.createXML(xml, 0)
            self._wait_agent(driver.option("boot_timeout_s"))
        except BaseException:
            self._teardown()
            raise

    @property
    def console_log(self) -> Path:
        return self.dir / "console.log"

    def _create(self, driver: "KvmDriver", artifacts: dict[str, Any]) -> str:
        self.dir.mkdir(parents=True, mode=0o700)
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
                          vhost=self.settings["net_backend"] == "vhost")

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

    def alive(self) -> bool:
        try:
            return bool(self._dom.isActive())
        except libvirtd.libvirt.libvirtError:  # a transient domain that stopped is gone
            return False

    def _gone(self, wait: float = 2.0) -> bool:
        """Whether the guest has stopped, allowing libvirt ``wait`` seconds to notice a QEMU that just
        died (until then the agent merely looks disconnected)."""
        end = time.monotonic() + wait
        while self.alive():
            if time.monotonic() > end:
                return False
            time.sleep(0.1)
        return True

    def _keep_console(self) -> None:
        """The instance directory goes with the teardown; the console log of a failed boot stays."""
        if self.console_log.exists():
            shutil.copyfile(self.console_log, self.saved_console)

    # -- guest agent ------------------------------------------------------------------------------
    def _agent(self, command: str, args: dict[str, Any] | None = None, timeout: int = 10,
               booting: bool = False) -> Any:
        msg = {"execute": command, **({"arguments": args} if args else {})}
        try:
            reply = libvirtd.libvirt_qemu.qemuAgentCommand(self._dom, json.dumps(msg), timeout, 0)
        except libvirtd.libvirt.libvirtError as e:
            # libvirt reports an error the agent answered with as an internal error; anything else
            # (no domain, agent not connected or not responding) means the agent did not answer
            if e.get_error_code() == libvirtd.libvirt.VIR_ERR_INTERNAL_ERROR:
                raise AgentRefused(f"{self.name}: guest agent {command}: {e.get_error_message()}") from None
            if not booting and self._gone():    # while booting, "not connected" is the normal answer
                raise InstanceError(f"{self.name}: the guest is gone (killed or crashed: QEMU no longer runs) "
                                    f"during guest agent {command}; no result kept") from None
            raise InstanceError(f"{self.name}: guest agent {command}: {e.get_error_message()}") from None
        return json.loads(reply)["return"]

    def _spawn(self, argv: Sequence[str], input: bytes | None = None) -> int:
        """Start argv in the guest through the agent; return its guest PID."""
        args: dict[str, Any] = {"path": argv[0], "arg": list(argv[1:]), "env": GUEST_ENV, "capture-output": True}
        if input is not None:
            if len(input) > AGENT_MAX_INPUT:
                raise InstanceError(f"{self.name}: {len(input)} bytes of stdin exceed the guest agent's "
                                    f"{AGENT_MAX_INPUT}-byte limit; use copy_in")
            args["input-data"] = base64.b64encode(input).decode()
        return self._agent("guest-exec", args)["pid"]

    def _wait(self, pid: int, timeout: float, what: str) -> tuple[int, bytes, bytes]:
        """Poll a guest-exec'd process until it exits; kill it and raise after ``timeout``."""
        end = time.monotonic() + timeout
        delay = 0.005
        # back off to 0.25 s so that polling a long benchmark costs the guest next to nothing
        while not (st := self._agent("guest-exec-status", {"pid": pid}))["exited"]:
            if time.monotonic() > end:
                # children of a shell it started keep running until the guest is destroyed
                self._agent("guest-exec", {"path": "/bin/kill", "arg": ["-KILL", str(pid)], "env": GUEST_ENV})
                raise InstanceError(f"{self.name}: command timed out after {timeout:.0f}s: {what}")
            time.sleep(delay)
            delay = min(delay * 2, 0.25)
        return self._result(st, what)

    def _result(self, status: dict[str, Any], what: str) -> tuple[int, bytes, bytes]:
        """(exit code, stdout, stderr) of a guest-exec-status that reported ``exited``."""
        if status.get("out-truncated") or status.get("err-truncated"):
            raise InstanceError(f"{self.name}: output of {what} exceeds the guest agent's capture limit; "
                                f"write it to a file and copy_out")
        rc = status["exitcode"] if "exitcode" in status else 128 + status.get("signal", 0)
        return rc, base64.b64decode(status.get("out-data", "")), base64.b64decode(status.get("err-data", ""))

    def _exec(self, argv: Sequence[str], timeout: float, input: bytes | None):
        try:
            pid = self._spawn(argv, input)
        except AgentRefused as e:  # the agent could not start it (no such file...): as a shell reports it
            return 127, b"", str(e).encode()
        return self._wait(pid, timeout, argv[0])

    # -- files: over the network, ~16x faster than guest-file-write -------------------------------
    def copy_in(self, src: Path, dst: str) -> None:
        size = Path(src).stat().st_size
        with open(src, "rb") as f:
            rc, out, err = self._netcopy('nc -l "$1" "$2" >"$3" && stat -c %s "$3"', dst,
                                         lambda s: s.sendfile(f))
        if rc != 0 or out.strip() != str(size).encode():
            raise InstanceError(f"copy {src} into {self.name}:{dst} failed: sent {size} bytes, guest has "
                                f"{out.decode().strip() or '?'} (exit {rc}: {err.decode().strip()[:200]})")

    def copy_out(self, src: str, dst: Path) -> None:
        received = 0
        with open(dst, "wb") as f:
            def receive(s: socket.socket) -> None:
                nonlocal received
                while chunk := s.recv(1 << 20):
                    f.write(chunk)
                    received += len(chunk)

            rc, out, err = self._netcopy('stat -c %s "$3" && exec nc -N -l "$1" "$2" <"$3"', src, receive)
        if rc != 0 or out.strip() != str(received).encode():
            Path(dst).unlink(missing_ok=True)
            raise InstanceError(f"copy {self.name}:{src} out failed: guest has {out.decode().strip() or '?'} "
                                f"bytes, received {received} (exit {rc}: {err.decode().strip()[:200]})")

    def _netcopy(self, script: str, path: str, transfer: Callable[[socket.socket], None]):
        """Run ``script`` (nc listening on the guest address) and ``transfer`` over a connection to it;
        return the script's (exit code, stdout, stderr)."""
        pid = self._spawn(["/bin/sh", "-c", script, "sh", self.ip, str(COPY_PORT), path])
        end = time.monotonic() + 10
        try:
            while True:
                try:
                    sock = socket.create_connection((self.ip, COPY_PORT), timeout=60)
                    break
                except ConnectionRefusedError:  # nc is not listening yet, or the script failed before it
                    if (st := self._agent("guest-exec-status", {"pid": pid}))["exited"]:
                        return self._result(st, "nc")
                    if time.monotonic() > end:
                        raise InstanceError(f"{self.name}: nc did not listen on {self.ip}:{COPY_PORT} "
                                            f"within 10 s") from None
                    time.sleep(0.01)
            with sock:
                transfer(sock)
                sock.shutdown(socket.SHUT_WR)
                sock.recv(1)  # returns when the guest closes: nc has everything
        except OSError as e:
            raise InstanceError(f"{self.name}: copying {path} over the network failed: {e}") from None
        return self._wait(pid, 60, "nc")

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
                destroy_domain(self._conn, self.name)
                (QEMU_LOG_DIR / f"{self.name}.log").unlink(missing_ok=True)
                with libvirtd.host_lock("kvm-net"):
                    remove_network_if_unused(self._conn)
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
    OPTIONS = {
        "accel": {"enum": ["auto", "kvm", "tcg"], "default": "auto",
                  "description": "auto/kvm: hardware KVM (or KVM with guest_kernel on a PVM host), otherwise "
                                 "unavailable; tcg: QEMU emulation (~13% of native CPU speed), every result "
                                 "labelled emulated: for functional tests only"},
        "tuning": {"enum": ["untuned", "tuned"], "default": "untuned",
                   "description": "untuned: QEMU's default CPU model, no pinning, userspace virtio-net; tuned "
                                  "(the paper's tuned KVM): host CPU model, vCPUs pinned 1:1 to host CPUs "
                                  "0..n-1, vhost-net"},
        "disk": {"enum": ["qcow2", "raw"], "default": "qcow2",
                 "description": "image format of the /data disk (virtio, cache=none, io=native)"},
        "guest_kernel": {"type": ["string", "null"], "pattern": "^/", "default": None,
                         "description": "absolute path of an uncompressed vmlinux (PVH entry) to boot instead "
                                        "of the image's kernel; needed for KVM on a PVM host (a PVM guest "
                                        "kernel)"},
        "boot_timeout_s": {"type": "integer", "minimum": 1, "default": 60,
                           "description": "seconds from domain start until the guest agent must answer"},
    }

    def __init__(self, *args, subnet: str = "10.213.78.0/24", **kw):
        super().__init__(*args, **kw)
        self.subnet = subnet

    @classmethod
    def uses_subnet(cls, options: dict[str, Any]) -> bool:
        return True

    def option(self, key: str) -> Any:
        return self.options.get(key, self.OPTIONS[key]["default"])

    def availability(self) -> Availability:
        if libvirtd.libvirt is None:
            return Availability(False, "libvirt-python is not installed in the pipeline's environment")
        missing = [t for t in ("libvirtd", "virtlogd", "qemu-system-x86_64", "qemu-img", "mkfs.ext4")
                   if shutil.which(t) is None]
        if missing:
            return Availability(False, f"{', '.join(missing)} not found; install libvirt-daemon-system, "
                                       f"qemu-system-x86 and qemu-utils (./install.sh does)")
        kernel = self.option("guest_kernel")
        if kernel is not None and not Path(kernel).is_file():
            return Availability(False, f"guest_kernel {kernel} does not exist")
        return choose_accel(self.option("accel"), host_probe(kernel))

    def provision(self) -> dict[str, Any]:
        """Build (or find cached) the guest's kernel, initramfs and base disk; return their manifest."""
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
            destroy_domain(conn, name)
        finally:
            conn.close()
        shutil.rmtree(instance_dir(self.paths, name), ignore_errors=True)
        self.paths.instances.mkdir(parents=True, exist_ok=True)
        return KvmInstance(name, self, artifacts)

    def settings(self) -> dict[str, Any]:
        labels = self.availability().labels
        accel, tuning = labels.get("accel", "unavailable"), self.option("tuning")
        vhost = uses_vhost(accel, tuning, Path("/dev/vhost-net").exists())
        return {"driver": self.kind, "accel": accel, "emulated": labels.get("emulated"), "tuning": tuning,
                "disk": self.option("disk"), "cpus": self.limits.cpus, "memory_mib": self.limits.memory_mib,
                "cpu_mode": cpu_mode(accel, tuning), "net_backend": "vhost" if vhost else "qemu",
                "guest_kernel": self.option("guest_kernel")}

    @classmethod
    def cleanup_stale(cls, paths: StatePaths) -> list[str]:
        removed = []
        if libvirtd.libvirt is not None:
            if _libvirt_leftovers():  # libvirtd died with our guests running: it reattaches them on start
                libvirtd.ensure_running(paths.root)
            if libvirtd.answers():
                conn = libvirtd.connect()
                for dom in conn.listAllDomains():
                    if dom.name().startswith(NAME_PREFIX) and destroy_domain(conn, dom.name()):
                        removed.append(f"libvirt domain {dom.name()}")
                with libvirtd.host_lock("kvm-net"):
                    if remove_network_if_unused(conn):
                        removed.append(f"libvirt network {NETWORK}")
                conn.close()
        leftovers = [*paths.instances.glob(f"{NAME_PREFIX}*.kvm"), *paths.instances.glob(f"{NAME_PREFIX}*.console.log"),
                     *paths.images.glob(".kvm-*.partial"), *QEMU_LOG_DIR.glob(f"{NAME_PREFIX}*.log")]
        for p in sorted(leftovers):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(f"kvm file {p}")
        return removed
