"""Remove every host object isobench made for a state_dir, and nothing else.

What the drivers left behind for that state_dir (containers, guests, the private networks and
bridge, firewall rules, instance overlays and mounts), each recognised by its ownership marker
(or, made before markers, by the old name and a path under the state_dir), and the daemons a
driver started for the run. Anyone else's objects stay, whatever their names. Results under
results/ and the cached image are kept (--images removes the image cache too: only the project's
own entries of state_dir/images).

It takes the host lock first, like a run: during a run it refuses in the same one line as a
second run would (its job inside `snakemake cleanup` goes ahead under that run's lock). The state
dir is checked as the config's state_dir is.

    python scripts/cleanup.py [--state-dir /var/lib/isobench] [--images]
    snakemake --cores 1 cleanup        (the same, as a Snakemake target)
"""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from isobench import pipeline
from isobench.config import check_state_dir
from isobench.drivers import StatePaths, cleanup_all, release_all
from isobench.drivers.mounts import remove_tree
from isobench.errors import ConfigError

#: the entries of state_dir/images the project makes (image.py, drivers/kvm/image.py)
IMAGE_ENTRIES = ("rootfs-*", ".rootfs-*", "kvm-*", ".kvm-*")


def remove_images(images: Path) -> list[str]:
    """The project's own entries of the image cache, then the directory if that left it empty."""
    if not images.is_dir() or images.is_symlink():
        return []
    removed = []
    for entry in sorted({p for pattern in IMAGE_ENTRIES for p in images.glob(pattern)}):
        if entry.is_dir() and not entry.is_symlink():
            remove_tree(entry)
        else:
            entry.unlink(missing_ok=True)
        removed.append(f"image cache entry {entry}")
    try:
        images.rmdir()
    except OSError:
        pass
    return removed


def main(state_dir: str, images: bool = False, *, within_run: bool = False, key: str = "--state-dir") -> list[str]:
    try:
        check_state_dir(state_dir)
    except ConfigError as e:
        print(f"isobench: {str(e).replace('config: state_dir: ', f'{key}: ', 1)}", file=sys.stderr)
        sys.exit(1)
    pipeline.take_host_lock(state_dir, within_run=within_run)
    try:
        paths = StatePaths(Path(state_dir))
        removed = cleanup_all(paths)
        removed += release_all(paths)
        if images:
            removed += remove_images(paths.images)
    finally:
        pipeline.release_host_lock()
    for what in removed:
        print(f"isobench: removed {what}")
    if not removed:
        print("isobench: nothing to remove")
    return removed


if "snakemake" in globals():
    from isobench.config import state_dir_of

    sm = snakemake  # noqa: F821
    removed = main(state_dir_of(sm.config, sm.wildcards.get("host")), within_run=True, key="state_dir")
    Path(sm.log[0]).write_text("".join(f"removed {what}\n" for what in removed))
elif __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--state-dir", default="/var/lib/isobench",
                    help="the state_dir whose objects to remove (checked as the config's is)")
    ap.add_argument("--images", action="store_true", help="also remove the cached image root filesystems")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("isobench: cleanup must run as root (it removes containers, guests and firewall rules)",
              file=sys.stderr)
        sys.exit(1)
    main(args.state_dir, args.images)
