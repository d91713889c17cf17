"""The image root filesystem every environment runs: built once from Debian packages, cached.

The same directory is the lower layer of every native chroot and LXC overlay, and the source of the
KVM guest disk, so all environments execute byte-identical tool builds. It is keyed by a hash of
its package list and options: a changed list builds a new image next to the old one.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from .errors import BenchError
from .util import read_json, run, stable_hash, write_json

log = logging.getLogger("isobench")

#: bump when the build recipe below changes in a way that changes the image
RECIPE_VERSION = 1
MANIFEST = "isobench-image.json"


def image_key(spec: dict[str, Any]) -> str:
    """Names the image directory: its recipe (the spec). Not its identity for the cache: see
    content_key."""
    return stable_hash({"recipe": RECIPE_VERSION, **spec})


def content_key(packages: dict[str, str]) -> str:
    """The image as the cells see it: every installed package and version, and the recipe. A rebuild
    with newer packages changes it (every cell re-measures); a new mirror with the same packages
    does not."""
    return stable_hash({"recipe": RECIPE_VERSION, "packages": dict(sorted(packages.items()))})


def mmdebstrap_argv(spec: dict[str, Any], target: Path) -> list[str]:
    mirror = spec["mirror"].rstrip("/")
    suite = spec["suite"]
    sec = spec.get("security_mirror", mirror + "-security").rstrip("/")
    argv = ["mmdebstrap", "--variant=minbase", "--include=" + ",".join(sorted(spec["packages"])),
            # documentation and locales are not needed to run benchmarks
            "--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
            # no passwords or keys in the image: root is locked, commands come in through
            # lxc-attach, chroot or the guest agent
            "--customize-hook=chroot \"$1\" passwd -l root",
            "--customize-hook=mkdir -p \"$1/data\"",
            suite, str(target),
            f"deb {mirror} {suite} main", f"deb {mirror} {suite}-updates main",
            f"deb {sec} {suite}-security main"]
    return argv


def ensure_rootfs(spec: dict[str, Any], images_dir: Path, timeout: float = 1800) -> dict[str, Any]:
    """Return the manifest of the image for ``spec``, building it if it is not cached."""
    key = image_key(spec)
    images_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
    # one builder at a time per image directory (two runs, or two fake hosts of one machine); the
    # others wait, then find it built
    with open(images_dir / f".rootfs-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _ensure_rootfs(spec, key, images_dir, timeout)


def _ensure_rootfs(spec: dict[str, Any], key: str, images_dir: Path, timeout: float) -> dict[str, Any]:
    target = images_dir / f"rootfs-{key}"
    manifest_path = images_dir / f"rootfs-{key}.json"
    if manifest_path.exists() and (target / "usr").is_dir():
        manifest = read_json(manifest_path)
        if "content_key" not in manifest:      # built before images were keyed by content
            manifest["content_key"] = content_key(manifest.get("packages") or dpkg_versions(target))
            write_json(manifest_path, manifest)
        return manifest
    missing = [t for t in ("mmdebstrap",) if shutil.which(t) is None]
    if missing:
        raise BenchError(f"{', '.join(missing)} not found; run ./install.sh first")
    images_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
    os.chmod(images_dir, 0o755)
    tmp = images_dir / f".rootfs-{key}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    log.info("building image rootfs-%s from Debian packages (%d packages; a few minutes)",
             key, len(spec["packages"]))
    t0 = time.monotonic()
    proc = run(mmdebstrap_argv(spec, tmp), timeout=timeout, check=False)
    if proc.returncode != 0:
        # apt reports a full disk in many words ("IO Error saving source cache", "No space
        # left"); the free space on the target filesystem says it plainly
        st = os.statvfs(images_dir)
        full = st.f_bavail * st.f_frsize < 64 * 1024 * 1024
        shutil.rmtree(tmp, ignore_errors=True)
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-5:]
        if full or any("No space left" in t for t in tail):
            raise BenchError(f"image build failed: disk full in {images_dir} (an image needs about 1.2 GB); "
                             f"free space there or set state_dir elsewhere")
        raise BenchError(f"image build failed: {' | '.join(tail)[:600]}")
    shutil.rmtree(target, ignore_errors=True)
    os.rename(tmp, target)
    versions = dpkg_versions(target)
    manifest = {"key": key, "rootfs": str(target), "spec": spec, "built_seconds": round(time.monotonic() - t0, 1),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "packages": versions,
                "content_key": content_key(versions)}
    write_json(manifest_path, manifest)
    log.info("image rootfs-%s built in %.0f s", key, manifest["built_seconds"])
    return manifest


def dpkg_versions(rootfs: Path) -> dict[str, str]:
    out = run(["chroot", str(rootfs), "dpkg-query", "-W", "-f", "${Package} ${Version}\n"]).stdout.decode()
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def check_rootfs(manifest: dict[str, Any]) -> Path:
    root = Path(manifest["rootfs"])
    if not (root / "usr").is_dir():
        raise BenchError(f"image {root} is missing (removed by cleanup?); rerun with "
                         f"`snakemake --cores 1 --forcerun provision_image all`")
    return root
