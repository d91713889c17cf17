"""KVM guest boot artifacts made from the shared image root filesystem: kernel, initramfs, base disk.

The recipe is the measured fast boot of ``notes/kvm-fast-boot.md`` (agent reachable ~3 s after
``createXML`` even under TCG):

* the **uncompressed vmlinux**, booted through its PVH entry: under TCG the bzImage's XZ
  decompressor alone takes ~3 s, so it is unpacked once here;
* a **tiny uncompressed busybox initramfs** whose ``/init`` loads the virtio/ext4 modules, mounts
  the root disk (vda) and the data disk (vdb, at /data), configures eth0 from ``bench.ip`` /
  ``bench.gw`` on the kernel command line and ``switch_root``s straight to tini + qemu-ga: no
  systemd and no udev, which cost ~14 s per boot;
* a **base raw ext4 disk** made with ``mkfs.ext4 -d`` from the rootfs. It is never written: every
  guest boots a qcow2 overlay of it.

Everything is keyed by the image key, the recipe version and the guest kernel, built in a private
``.partial`` directory and renamed into place, so concurrent or interrupted builds never leave a
half-made cache entry.
"""

from __future__ import annotations

import lzma
import os
import re
import shutil
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

from ...errors import BenchError
from ...hostinfo import hosts_file
from ...util import read_json, run, stable_hash, write_json

#: bump when anything below changes what ends up in the artifacts
RECIPE_VERSION = 1
MANIFEST = "manifest.json"
BUSYBOX = Path("/bin/busybox")  # Debian busybox-static: the initramfs has no libc
#: what /init loads before it mounts the disks. crc32c_generic is named because ext4 asks the crypto
#: API for crc32c only at mount time (a softdep), which busybox's modprobe does not follow
MODULES = ("virtio_pci", "virtio_blk", "crc32c_generic", "ext4", "virtio_console", "virtio_net", "virtio_rng")
APPLETS = ("sh", "cat", "hostname", "ip", "mkdir", "modprobe", "mount", "sleep", "switch_root")
XZ_MAGIC = b"\xfd7zXZ\x00"

INIT = r"""#!/bin/sh
# isobench guest bring-up (scripts/isobench/guestimage.py). Kernel cmdline: bench.ip=ADDR/PREFIX
# bench.gw=GW. Any failure makes PID 1 exit: the kernel panics, panic=-1 reboots at once and
# libvirt (on_reboot=destroy) ends the domain, so the host sees the failure without waiting.
die() { echo "isobench-init: $*"; exit 1; }
wait_for() { i=0; while [ ! -e "$1" ] && [ $i -lt 250 ]; do sleep 0.02; i=$((i+1)); done; [ -e "$1" ]; }
mount -t devtmpfs devtmpfs /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys
# one modprobe for all (each extra exec costs under TCG); a guest_kernel without matching
# modules in the image has no list and must have virtio and ext4 built in
[ ! -s /etc/modules ] || modprobe -a $(cat /etc/modules) 2>/dev/null
IP= GW=
for a in $(cat /proc/cmdline); do
  case $a in bench.ip=*) IP=${a#bench.ip=};; bench.gw=*) GW=${a#bench.gw=};; esac
done
wait_for /dev/vda || die "no root disk /dev/vda"
mount -t ext4 /dev/vda /newroot || die "cannot mount the root disk /dev/vda"
mkdir -p /newroot/data
wait_for /dev/vdb || die "no data disk /dev/vdb"
mount -t ext4 /dev/vdb /newroot/data || die "cannot mount the data disk /dev/vdb on /data"
hostname guest
# the overlay disk's /etc/hosts, so that "guest" resolves without DNS
cat >/newroot/etc/hosts <<'HOSTS'
@ETC_HOSTS@HOSTS
ip link set lo up
if [ -n "$IP" ]; then
  wait_for /sys/class/net/eth0 || die "no network interface eth0"
  ip addr add "$IP" dev eth0 && ip link set eth0 up || die "cannot configure eth0 with $IP"
  [ -z "$GW" ] || ip route add default via "$GW"
fi
# virtio_console adds its ports asynchronously, and without udev there is no
# /dev/virtio-ports/org.qemu.guest_agent.0 symlink: find the agent's port in sysfs
PORT= i=0
while [ -z "$PORT" ] && [ $i -lt 250 ]; do
  for p in /sys/class/virtio-ports/*; do
    [ "$(cat "$p/name" 2>/dev/null)" = org.qemu.guest_agent.0 ] && [ -c "/dev/${p##*/}" ] && PORT=/dev/${p##*/}
  done
  [ -n "$PORT" ] || { i=$((i+1)); sleep 0.02; }
done
[ -n "$PORT" ] || die "no guest agent port"
mount -t tmpfs -o mode=755 tmpfs /newroot/run
mount -t tmpfs -o mode=1777 tmpfs /newroot/tmp
for d in dev proc sys; do mount --move /$d /newroot/$d; done
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts -o gid=5,mode=620 devpts /newroot/dev/pts
mount -t tmpfs tmpfs /newroot/dev/shm
# the environment qemu-ga, and so every guest-exec, inherits
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C
exec switch_root /newroot /usr/bin/tini-static -s -- /usr/sbin/qemu-ga -m virtio-serial -p "$PORT"
"""
INIT = INIT.replace("@ETC_HOSTS@", hosts_file("guest"))


# -- pure helpers ------------------------------------------------------------------------------
def artifacts_key(image_key: str, guest_kernel: Path | None) -> str:
    """Cache key: the image, this recipe (and the init script's text, so editing it rebuilds), and
    the guest kernel file (by path, size and mtime)."""
    kernel = None
    if guest_kernel is not None:
        st = guest_kernel.stat()
        kernel = [str(guest_kernel), st.st_size, st.st_mtime_ns]
    return stable_hash({"image": image_key, "recipe": RECIPE_VERSION, "init": INIT, "guest_kernel": kernel})


def _version_key(release: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", release)]


def rootfs_kernel(rootfs: Path) -> Path:
    """The bzImage of the newest kernel installed in the rootfs."""
    found = sorted(rootfs.glob("boot/vmlinuz-*"), key=lambda p: _version_key(p.name))
    if not found:
        raise BenchError(f"no kernel in {rootfs}/boot; add linux-image-amd64 to image.packages")
    return found[-1]


def extract_vmlinux(bzimage: bytes) -> bytes:
    """The uncompressed kernel ELF inside an XZ-compressed bzImage (Debian's CONFIG_KERNEL_XZ)."""
    start = bzimage.find(XZ_MAGIC)
    if start < 0:
        raise BenchError("the rootfs kernel is not XZ-compressed; set guest_kernel to an uncompressed vmlinux")
    # the decompressor stops at the end of the XZ stream; the bzImage trailer after it is ignored
    return lzma.LZMADecompressor().decompress(bzimage[start:])


def _program_headers(elf: bytes) -> list[tuple[int, int, int]]:
    """(p_type, p_offset, p_filesz) of each program header of an ELF64 file; [] if it is not one."""
    if elf[:5] != b"\x7fELF\x02":
        return []
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    headers = []
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", elf, phoff + i * phentsize)
        headers.append((p_type, p_offset, p_filesz))
    return headers


def has_pvh_entry(elf: bytes) -> bool:
    """Whether an ELF kernel has the Xen PHYS32_ENTRY note QEMU needs to boot it directly (PVH)."""
    for p_type, offset, size in _program_headers(elf):
        if p_type != 4:  # PT_NOTE
            continue
        pos, end = offset, offset + size
        while pos + 12 <= end:
            namesz, descsz, n_type = struct.unpack_from("<III", elf, pos)
            name = elf[pos + 12:pos + 12 + namesz].rstrip(b"\0")
            if name == b"Xen" and n_type == 18:  # XEN_ELFNOTE_PHYS32_ENTRY
                return True
            pos += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


def is_static_executable(elf: bytes) -> bool:
    """An ELF executable without a program interpreter (PT_INTERP): it runs without a libc."""
    headers = _program_headers(elf)
    return bool(headers) and all(p_type != 3 for p_type, _, _ in headers)


def kernel_release(vmlinux: bytes) -> str:
    """The release string (``uname -r``) in an uncompressed kernel's version banner."""
    m = re.search(rb"Linux version (\S+) \(", vmlinux)
    if not m:
        raise BenchError("no 'Linux version' banner in the guest kernel; is it an uncompressed vmlinux?")
    return m.group(1).decode()


def module_load_order(modules_dep: str, builtin: str, names: tuple[str, ...]) -> list[str]:
    """The module files (relative to /lib/modules/<release>) ``modprobe -a names`` loads, dependencies
    first, read from the kernel's modules.dep and modules.builtin (a built-in name needs no file).
    """
    def modname(path: str) -> str:
        return Path(path).name.removesuffix(".ko").replace("-", "_")

    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in modules_dep.splitlines():
        mod, _, rest = line.partition(":")
        if mod:
            deps[mod] = rest.split()
            by_name[modname(mod)] = mod
    built_in = {modname(line) for line in builtin.split()}
    order: list[str] = []

    def visit(mod: str) -> None:
        if mod in order:
            return
        for dep in deps[mod]:
            visit(dep)
        order.append(mod)

    for name in names:
        key = name.replace("-", "_")
        if key in by_name:
            visit(by_name[key])
        elif key not in built_in:
            raise BenchError(f"kernel module {name} is neither a module nor built in (modules.dep)")
    return order


# -- building ----------------------------------------------------------------------------------
def write_initramfs(dst: Path, modules_dir: Path | None, scratch: Path) -> list[str]:
    """Write the uncompressed newc initramfs to ``dst``; return the module files it loads."""
    tree = scratch / "initramfs"
    for d in ("bin", "dev", "etc", "proc", "sys", "newroot"):
        (tree / d).mkdir(parents=True)
    shutil.copy2(BUSYBOX, tree / "bin" / "busybox")
    for applet in APPLETS:
        (tree / "bin" / applet).symlink_to("busybox")
    modules = []
    if modules_dir is not None:
        modules = module_load_order((modules_dir / "modules.dep").read_text(),
                                    (modules_dir / "modules.builtin").read_text(), MODULES)
        release = modules_dir.name
        for rel in modules:
            (tree / "lib" / "modules" / release / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(modules_dir / rel, tree / "lib" / "modules" / release / rel)
        # busybox's depmod: the host needs no kmod, and busybox's modprobe reads what it writes
        run([str(BUSYBOX), "depmod", "-b", str(tree), release])
        (tree / "etc" / "modules").write_text(" ".join(MODULES) + "\n")
    (tree / "init").write_text(INIT)
    (tree / "init").chmod(0o755)
    files = sorted(str(p.relative_to(tree)) for p in tree.rglob("*"))
    archive = run(["cpio", "-o", "-H", "newc", "--quiet", "--reproducible", "-D", str(tree)],
                  input="\n".join(files).encode()).stdout
    dst.write_bytes(archive)
    shutil.rmtree(tree)
    return modules


def base_disk_bytes(rootfs: Path) -> int:
    """Virtual size of the base disk: the tree plus room for ext4 metadata and guest writes.

    The file is sparse, so the headroom costs nothing until a guest writes (into its overlay).
    """
    used = int(run(["du", "-sx", "--block-size=1", str(rootfs)], timeout=300).stdout.split()[0])
    mib = 1024 * 1024
    return -(-(used * 5 // 4 + 1024 * mib) // (64 * mib)) * 64 * mib


def make_base_disk(rootfs: Path, dst: Path) -> None:
    size = base_disk_bytes(rootfs)
    with open(dst, "wb") as f:
        f.truncate(size)
    run(["mkfs.ext4", "-q", "-F", "-L", "isobench-root", "-d", str(rootfs), str(dst)], timeout=1200)
    dst.chmod(0o444)  # the shared lower layer of every guest: nothing may write it


def ensure_guest_artifacts(rootfs: Path, image_key: str, images_dir: Path,
                           guest_kernel: Path | None = None) -> dict[str, Any]:
    """Return the manifest of the boot artifacts for this image, building them if not cached."""
    key = artifacts_key(image_key, guest_kernel)
    target = images_dir / f"kvm-{key}"
    if (target / MANIFEST).exists():
        return read_json(target / MANIFEST)
    for tool in ("mkfs.ext4", "cpio"):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} not found; run ./install.sh first")
    if not (BUSYBOX.exists() and is_static_executable(BUSYBOX.read_bytes())):
        raise BenchError(f"{BUSYBOX} is missing or dynamically linked; install busybox-static")
    images_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    tmp = Path(tempfile.mkdtemp(dir=images_dir, prefix=f".kvm-{key}.", suffix=".partial"))
    try:
        if guest_kernel is None:
            vmlinux = extract_vmlinux(rootfs_kernel(rootfs).read_bytes())
        else:
            vmlinux = guest_kernel.read_bytes()
        if not has_pvh_entry(vmlinux):
            raise BenchError(f"guest kernel {guest_kernel or 'from the rootfs'} has no PVH entry note; QEMU "
                             f"boots only an uncompressed vmlinux built with CONFIG_PVH=y directly")
        release = kernel_release(vmlinux)
        (tmp / "vmlinux").write_bytes(vmlinux)
        modules_dir = rootfs / "lib" / "modules" / release
        modules = write_initramfs(tmp / "initramfs.cpio", modules_dir if modules_dir.is_dir() else None, tmp)
        make_base_disk(rootfs, tmp / "base.raw")
        manifest = {
            "key": key, "image_key": image_key, "recipe": RECIPE_VERSION, "dir": str(target),
            "vmlinux": str(target / "vmlinux"), "initramfs": str(target / "initramfs.cpio"),
            "base_disk": str(target / "base.raw"), "kernel_release": release,
            "guest_kernel": str(guest_kernel) if guest_kernel else None, "modules": modules,
            "bytes": {f: (tmp / f).stat().st_size for f in ("vmlinux", "initramfs.cpio", "base.raw")},
            "base_disk_used_bytes": (tmp / "base.raw").stat().st_blocks * 512,
            "build_seconds": round(time.monotonic() - t0, 1),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        write_json(tmp / MANIFEST, manifest)
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / MANIFEST).exists():  # not a concurrent build that finished first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return read_json(target / MANIFEST)
