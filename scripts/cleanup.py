"""Remove every host object isobench created, and nothing else (safe to run at any time).

Containers, libvirt domains and the isobench-net network, the isobench0 bridge, the ISOBENCH-DNAT
iptables chain, instance overlays and mounts under the state dir, and libvirtd/virtlogd if the
pipeline started them. Results under results/ and the cached image are kept (--images removes the
image cache too).

    python scripts/cleanup.py [--state-dir /var/lib/isobench] [--images]
    snakemake --cores 1 cleanup        (the same, as a Snakemake target)
"""

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from isobench import libvirtd  # noqa: E402
from isobench.cell import cleanup_all  # noqa: E402
from isobench.drivers.base import StatePaths  # noqa: E402


def main(state_dir: str, images: bool = False) -> list[str]:
    paths = StatePaths(Path(state_dir))
    removed = cleanup_all(paths)
    removed += libvirtd.stop_started(paths.root)
    if images and paths.images.exists():
        shutil.rmtree(paths.images)
        removed.append(f"image cache {paths.images}")
    for what in removed:
        print(f"isobench: removed {what}")
    if not removed:
        print("isobench: nothing to remove")
    return removed


if "snakemake" in globals():
    main(snakemake.params.state_dir)  # noqa: F821
elif __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--state-dir", default="/var/lib/isobench")
    ap.add_argument("--images", action="store_true", help="also remove the cached image root filesystems")
    args = ap.parse_args()
    main(args.state_dir, args.images)
