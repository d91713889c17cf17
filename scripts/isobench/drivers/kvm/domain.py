"""The pure decisions of a KVM guest: which acceleration, CPU model and network backend, the kernel
command line, and the libvirt XML of the domain and of the host-only network.

Nothing here talks to libvirt; the unit tests check these directly.
"""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from ..base import OWNER_NS, Availability

NETWORK = "isobench-net"
BRIDGE = "isobench1"


def host_probe(guest_kernel: str | None) -> dict[str, bool]:
    """What decides the acceleration: the KVM device, which KVM module, and a PVM guest kernel."""
    return {"dev_kvm": Path("/dev/kvm").exists(),
            **{m: Path(f"/sys/module/{m}").exists() for m in ("kvm_intel", "kvm_amd", "kvm_pvm")},
            "guest_kernel": guest_kernel is not None}


def choose_accel(requested: str, probe: dict[str, bool]) -> Availability:
    """TCG only when asked for; otherwise KVM if this host can run the guest at speed, or why not
    (``accel: kvm`` asked for explicitly makes the environment required: an error, not a skip)."""
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
    # auto: skip the environment; kvm asked for explicitly: its jobs fail with the reason
    return Availability(False, reason=f"no usable KVM on this host ({why}); {hint}", required=requested == "kvm")


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


def _owner(parent: ET.Element, state_dir: str | None) -> None:
    """<metadata><isobench:owner state_dir="..."/></metadata>: libvirt keeps it with the object."""
    if state_dir is not None:   # the namespace declared on the element itself, as libvirt stores it
        _el(_el(parent, "metadata"), "isobench:owner", **{"xmlns:isobench": OWNER_NS, "state_dir": state_dir})


def owner_of(xml: str) -> str | None:
    """The state_dir in a libvirt object's ownership marker (its XMLDesc), None without one."""
    try:
        found = ET.fromstring(xml).find(f"metadata/{{{OWNER_NS}}}owner")
    except ET.ParseError:
        return None
    return None if found is None else found.get("state_dir")


def disk_sources(xml: str) -> list[str]:
    """The files a domain's disks are backed by (its XMLDesc)."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return []
    return [s.get("file") for s in root.iterfind("devices/disk/source") if s.get("file")]


def networks_used(xml: str) -> list[str]:
    """The libvirt networks a domain's interfaces are attached to (its XMLDesc)."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return []
    return [s.get("network") for s in root.iterfind("devices/interface/source") if s.get("network")]


def _el(parent: ET.Element, tag: str, text: str | None = None, **attrs: Any) -> ET.Element:
    e = ET.SubElement(parent, tag, {k: str(v) for k, v in attrs.items()})
    e.text = text
    return e


def domain_xml(*, name: str, accel: str, tuning: str, disk: str, cpus: int, memory_mib: int,
               kernel: str, initrd: str, cmdline: str, root_disk: Path, data_disk: Path,
               console_log: Path, mac: str, vhost: bool, state_dir: str | None = None) -> str:
    """The libvirt domain of one guest (transient: created with createXML, gone when destroyed),
    carrying the ownership marker of ``state_dir`` in its <metadata> (:func:`owner_of`)."""
    dom = ET.Element("domain", type="kvm" if accel == "kvm" else "qemu")
    _el(dom, "name", name)
    _owner(dom, state_dir)
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


def network_xml(subnet: str, state_dir: str | None = None) -> str:
    """Host-only: no <forward> (no NAT, no routing: libvirt rejects forwarding into and out of an
    isolated network), no DHCP, no DNS (so no dnsmasq either); marked like a domain."""
    net = ipaddress.ip_network(subnet)
    root = ET.Element("network")
    _el(root, "name", NETWORK)
    _owner(root, state_dir)
    _el(root, "bridge", name=BRIDGE, stp="off", delay=0)
    _el(root, "dns", enable="no")
    _el(root, "ip", address=next(net.hosts()), prefix=net.prefixlen)
    return ET.tostring(root, encoding="unicode")
