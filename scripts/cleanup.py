"""Remove every host object isobench created, and nothing else (safe to run at any time).

What every driver left behind (containers, guests, private networks and bridges, NAT rules,
instance overlays and mounts under the state dir) and the daemons a driver started for the run.
Results under results/ and the cached image are kept (--images removes the
image cache too).

    python scripts/cleanup.py [--state-dir /var/lib/isobench] [--images]
    snakemake --cores 1 cleanup        (the same, as a Snakemake target)
"""

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from isobench.drivers import StatePaths, cleanup_all, release_all


def main(state_dir: str, images: bool = False) -> list[str]:
    paths = StatePaths(Path(state_dir))
    removed = cleanup_all(paths)
    removed += release_all(paths)
    if images and paths.images.exists():
        shutil.rmtree(paths.images)
        removed.append(f"image cache {paths.images}")
    for what in removed:
        print(f"isobench: removed {what}")
    if not removed:
        print("isobench: nothing to remove")
    return removed


if "snakemake" in globals():
    from isobench.config import state_dir_of

    sm = snakemake  # noqa: F821
    removed = main(state_dir_of(sm.config, sm.wildcards.get("host")))
    Path(sm.log[0]).write_text("".join(f"removed {what}\n" for what in removed))
elif __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--state-dir", default="/var/lib/isobench")
    ap.add_argument("--images", action="store_true", help="also remove the cached image root filesystems")
    args = ap.parse_args()
    main(args.state_dir, args.images)
