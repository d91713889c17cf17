"""The KVM driver's decisions without libvirt: acceleration choice, domain and network XML, the guest
boot artifacts' pure helpers, and the daemon bookkeeping."""

from __future__ import annotations

import lzma
import os
import struct
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from isobench.drivers import KINDS
from isobench.drivers.base import Limits, StatePaths
from isobench.drivers.kvm import KvmDriver
from isobench.drivers.kvm import daemon as libvirtd
from isobench.drivers.kvm import image as guestimage
from isobench.drivers.kvm.domain import (
    NETWORK,
    choose_accel,
    cpu_mode,
    domain_xml,
    guest_cmdline,
    network_xml,
    uses_vhost,
)
from isobench.errors import BenchError

NO_KVM = {"dev_kvm": False, "kvm_intel": False, "kvm_amd": False, "kvm_pvm": False, "guest_kernel": False}


def probe(**kw: bool) -> dict[str, bool]:
    return {**NO_KVM, **kw}


# -- acceleration -----------------------------------------------------------------------------------
@pytest.mark.parametrize("requested", ["auto", "kvm"])
@pytest.mark.parametrize("module", ["kvm_intel", "kvm_amd"])
def test_hardware_kvm_is_used(requested, module):
    avail = choose_accel(requested, probe(dev_kvm=True, **{module: True}))
    assert avail.available and avail.labels == {"accel": "kvm", "emulated": False}


@pytest.mark.parametrize("requested", ["auto", "kvm"])
def test_pvm_host_needs_a_guest_kernel(requested):
    without = choose_accel(requested, probe(dev_kvm=True, kvm_pvm=True))
    assert not without.available
    assert "PVM" in without.reason and "guest_kernel" in without.reason and "accel: tcg" in without.reason
    with_kernel = choose_accel(requested, probe(dev_kvm=True, kvm_pvm=True, guest_kernel=True))
    assert with_kernel.available and with_kernel.labels["accel"] == "kvm"


@pytest.mark.parametrize("requested", ["auto", "kvm"])
@pytest.mark.parametrize("host", [probe(), probe(kvm_intel=True), probe(dev_kvm=True)],
                         ids=["no-dev-kvm", "module-without-device", "device-without-module"])
def test_no_usable_kvm_says_why_and_how_to_opt_in(requested, host):
    avail = choose_accel(requested, host)
    assert not avail.available
    assert "\n" not in avail.reason and "set accel: tcg to run emulated" in avail.reason


@pytest.mark.parametrize("host", [probe(), probe(dev_kvm=True, kvm_pvm=True), probe(dev_kvm=True, kvm_amd=True)])
def test_tcg_is_an_explicit_opt_in_labelled_emulated(host):
    avail = choose_accel("tcg", host)
    assert avail.available and avail.labels == {"accel": "tcg", "emulated": True}


def test_cpu_mode_and_vhost_per_variant():
    assert cpu_mode("kvm", "untuned") == cpu_mode("tcg", "untuned") == "default"
    assert cpu_mode("kvm", "tuned") == "host-passthrough"
    assert cpu_mode("tcg", "tuned") == "maximum"  # TCG refuses host-passthrough
    assert uses_vhost("kvm", "tuned", True)
    assert not uses_vhost("kvm", "tuned", False)   # no /dev/vhost-net: libvirt would refuse the domain
    assert not uses_vhost("tcg", "tuned", True)    # libvirt ignores vhost for plain QEMU guests
    assert not uses_vhost("kvm", "untuned", True)


# -- domain XML -----------------------------------------------------------------------------------------
def make_xml(accel: str, tuning: str, disk: str, cpus: int = 2) -> ET.Element:
    text = domain_xml(name="isobench-t-x-1", accel=accel, tuning=tuning, disk=disk, cpus=cpus, memory_mib=768,
                      kernel="/s/vmlinux", initrd="/s/initramfs.cpio",
                      cmdline=guest_cmdline("10.1.2.20", "10.1.2.0/24"),
                      root_disk=Path("/s/root.qcow2"), data_disk=Path(f"/s/data.{disk}"),
                      console_log=Path("/s/console.log"), mac="00:16:3e:01:02:14",
                      vhost=uses_vhost(accel, tuning, True))
    return ET.fromstring(text)


@pytest.mark.parametrize("accel", ["kvm", "tcg"])
@pytest.mark.parametrize("tuning", ["untuned", "tuned"])
@pytest.mark.parametrize("disk", ["qcow2", "raw"])
def test_domain_xml_variant(accel, tuning, disk):
    dom = make_xml(accel, tuning, disk)
    assert dom.get("type") == ("kvm" if accel == "kvm" else "qemu")
    assert dom.findtext("vcpu") == "2"
    assert dom.find("memory").get("unit") == "MiB" and dom.findtext("memory") == "768"
    assert dom.find("features/acpi") is None  # ~1 s of boot under TCG
    assert dom.findtext("os/kernel") == "/s/vmlinux" and dom.findtext("os/initrd") == "/s/initramfs.cpio"
    assert "bench.ip=10.1.2.20/24" in dom.findtext("os/cmdline")
    assert dom.findtext("on_reboot") == "destroy"

    cpu = dom.find("cpu")
    pins = {(p.get("vcpu"), p.get("cpuset")) for p in dom.findall("cputune/vcpupin")}
    if tuning == "untuned":
        assert cpu is None and not pins
    else:
        assert pins == {("0", "0"), ("1", "1")}
        assert cpu.get("mode") == ("host-passthrough" if accel == "kvm" else "maximum")
        features = {(f.get("name"), f.get("policy")) for f in cpu.findall("feature")}
        assert features == ({("arch-capabilities", "disable")} if accel == "kvm" else set())

    disks = {d.find("target").get("dev"): d for d in dom.findall("devices/disk")}
    root, data = disks["vda"].find("driver"), disks["vdb"].find("driver")
    assert root.get("type") == "qcow2" and disks["vda"].find("source").get("file") == "/s/root.qcow2"
    assert (data.get("type"), data.get("cache"), data.get("io")) == (disk, "none", "native")
    assert disks["vdb"].find("target").get("bus") == "virtio"

    nic = dom.find("devices/interface")
    assert nic.get("type") == "network" and nic.find("source").get("network") == NETWORK
    assert nic.find("model").get("type") == "virtio" and nic.find("mac").get("address") == "00:16:3e:01:02:14"
    vhost = accel == "kvm" and tuning == "tuned"
    assert nic.find("driver").get("name") == ("vhost" if vhost else "qemu")

    channel = dom.find("devices/channel/target")
    assert channel.get("name") == "org.qemu.guest_agent.0"
    assert dom.find("devices/serial/source").get("path") == "/s/console.log"


def test_vcpus_are_pinned_one_to_one():
    dom = make_xml("kvm", "tuned", "raw", cpus=4)
    assert [(p.get("vcpu"), p.get("cpuset")) for p in dom.findall("cputune/vcpupin")] == \
        [("0", "0"), ("1", "1"), ("2", "2"), ("3", "3")]


def test_guest_cmdline_carries_address_gateway_and_fast_failure():
    line = guest_cmdline("10.213.78.42", "10.213.78.0/24")
    assert "bench.ip=10.213.78.42/24" in line and "bench.gw=10.213.78.1" in line
    assert "panic=-1" in line  # a failed /init ends the domain at once instead of hanging


def test_network_is_host_only():
    net = ET.fromstring(network_xml("10.213.78.0/24"))
    assert net.findtext("name") == NETWORK and net.find("bridge").get("name") == "isobench1"
    assert net.find("forward") is None  # no NAT, no routing
    assert net.find("ip/dhcp") is None and net.find("dns").get("enable") == "no"
    assert (net.find("ip").get("address"), net.find("ip").get("prefix")) == ("10.213.78.1", "24")


# -- driver surface ---------------------------------------------------------------------------------------
def make_driver(tmp_path: Path, **options) -> KvmDriver:
    return KvmDriver("kvm_t", options, Limits(2, 1024), StatePaths(tmp_path), {"rootfs": "/nonexistent", "key": "k"})


def test_registered_and_options_documented():
    assert KINDS["kvm"] is KvmDriver
    for key, spec in KvmDriver.OPTIONS.items():
        assert "default" in spec and spec.get("description"), key


def test_settings_record_the_environment(tmp_path, monkeypatch):
    monkeypatch.setattr("isobench.drivers.kvm.driver.host_probe", lambda kernel: probe())
    settings = make_driver(tmp_path, accel="tcg", tuning="tuned", disk="raw").settings()
    assert settings == {"driver": "kvm", "accel": "tcg", "emulated": True, "tuning": "tuned", "disk": "raw",
                        "cpus": 2, "memory_mib": 1024, "cpu_mode": "maximum", "net_backend": "qemu",
                        "guest_kernel": None}


def test_auto_on_a_host_without_kvm_is_unavailable(tmp_path, monkeypatch):
    monkeypatch.setattr("isobench.drivers.kvm.driver.host_probe", lambda kernel: probe())
    avail = make_driver(tmp_path).availability()
    assert not avail.available and "accel: tcg" in avail.reason


def test_missing_guest_kernel_is_unavailable(tmp_path):
    avail = make_driver(tmp_path, guest_kernel=str(tmp_path / "vmlinux-pvm")).availability()
    assert not avail.available and "does not exist" in avail.reason


# -- guest image helpers -------------------------------------------------------------------------------------
MODULES_DEP = """\
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/char/hw_random/virtio-rng.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/jbd2/jbd2.ko
kernel/lib/crc16.ko:
kernel/fs/jbd2/jbd2.ko:
"""


def test_module_load_order_puts_dependencies_first_and_skips_builtins():
    order = guestimage.module_load_order(MODULES_DEP, "kernel/drivers/block/virtio_blk.ko\n",
                                         ("virtio_pci", "virtio_blk", "ext4", "virtio_rng"))
    assert order == ["kernel/drivers/virtio/virtio_ring.ko", "kernel/drivers/virtio/virtio.ko",
                     "kernel/drivers/virtio/virtio_pci.ko", "kernel/lib/crc16.ko", "kernel/fs/jbd2/jbd2.ko",
                     "kernel/fs/ext4/ext4.ko", "kernel/drivers/char/hw_random/virtio-rng.ko"]


def test_module_that_does_not_exist_is_an_error():
    with pytest.raises(BenchError, match="virtio_fs"):
        guestimage.module_load_order(MODULES_DEP, "", ("virtio_fs",))


def elf_with_note(name: bytes, n_type: int) -> bytes:
    """A minimal ELF64 header with one PT_NOTE program header holding one note."""
    desc = b"\0" * 4
    note = struct.pack("<III", len(name) + 1, len(desc), n_type) + name + b"\0" * (4 - len(name) % 4) + desc
    header = b"\x7fELF\x02\x01\x01" + b"\0" * 9 + b"\0" * 16
    header += struct.pack("<Q", 64) + b"\0" * 14 + struct.pack("<HH", 56, 1)
    header = header.ljust(64, b"\0")
    phdr = struct.pack("<IIQQQQQQ", 4, 0, 64 + 56, 0, 0, len(note), len(note), 4)
    return header + phdr + note + b"Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org) #1"


def test_pvh_entry_note_is_recognised():
    assert guestimage.has_pvh_entry(elf_with_note(b"Xen", 18))
    assert not guestimage.has_pvh_entry(elf_with_note(b"Xen", 17))
    assert not guestimage.has_pvh_entry(elf_with_note(b"GNU", 18))
    assert not guestimage.has_pvh_entry(b"MZ" + b"\0" * 200)  # a bzImage


def test_initramfs_busybox_must_be_static():
    assert guestimage.is_static_executable(elf_with_note(b"GNU", 1))
    interp = bytearray(elf_with_note(b"GNU", 1))
    struct.pack_into("<I", interp, 64, 3)  # turn the program header into PT_INTERP
    assert not guestimage.is_static_executable(bytes(interp))
    assert not guestimage.is_static_executable(b"#!/bin/sh\n")
    if guestimage.BUSYBOX.exists():
        assert guestimage.is_static_executable(guestimage.BUSYBOX.read_bytes())


def test_vmlinux_is_unpacked_from_an_xz_bzimage():
    elf = elf_with_note(b"Xen", 18)
    bzimage = b"\0" * 512 + b"HdrS" + b"setup code" + lzma.compress(elf, format=lzma.FORMAT_XZ) + b"trailer"
    assert guestimage.extract_vmlinux(bzimage) == elf
    assert guestimage.kernel_release(elf) == "6.1.0-56-amd64"
    with pytest.raises(BenchError, match="not XZ"):
        guestimage.extract_vmlinux(b"\0" * 512 + b"HdrS" + b"gzip stream")


def test_artifacts_key_follows_image_and_guest_kernel(tmp_path):
    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(b"x")
    keys = {guestimage.artifacts_key("a", None), guestimage.artifacts_key("b", None),
            guestimage.artifacts_key("a", kernel)}
    assert len(keys) == 3
    assert guestimage.artifacts_key("a", None) == guestimage.artifacts_key("a", None)


def test_init_script_parses_with_busybox():
    if not guestimage.BUSYBOX.exists():
        pytest.skip("busybox-static not installed")
    proc = subprocess.run([str(guestimage.BUSYBOX), "sh", "-n", "-c", guestimage.INIT], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# -- daemons ---------------------------------------------------------------------------------------
def test_daemon_pid_trusts_only_a_live_process_of_that_name(tmp_path):
    pidfile = tmp_path / "x.pid"
    pidfile.write_text(f"{os.getpid()}\n")
    assert libvirtd.daemon_pid("libvirtd", pidfile) is None  # this test process, not libvirtd
    own = Path(f"/proc/{os.getpid()}/comm").read_text().strip()
    assert libvirtd.daemon_pid(own, pidfile) == os.getpid()
    assert libvirtd.daemon_pid("libvirtd", tmp_path / "missing.pid") is None


def test_stop_started_without_a_record_stops_nothing(tmp_path):
    assert libvirtd.stop_started(tmp_path) == []


def test_tcg_guests_get_a_calibrated_tsc_and_kvm_guests_do_not():
    """Without it a TCG guest falls back to jiffies and every latency is 0 or 4 ms."""
    assert "tsc_early_khz=2596142 tsc=reliable" in guest_cmdline("10.1.2.20", "10.1.2.0/24", 2596142)
    assert "tsc" not in guest_cmdline("10.1.2.20", "10.1.2.0/24")
