"""Snakemake entry (rule provision_image): build or reuse the image root filesystem; record the host."""

from pathlib import Path

from isobench.entry import run_step
from isobench.hostinfo import fingerprint
from isobench.image import ensure_rootfs
from isobench.util import write_json


def main(spec: dict, state_dir: str, image_out: str, host_out: str) -> None:
    write_json(image_out, ensure_rootfs(spec, Path(state_dir) / "images"))
    write_json(host_out, fingerprint())      # the host the image was provisioned on (a cluster node's identity)


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    run_step(lambda: main(dict(sm.params.spec), sm.params.state_dir, sm.output.image, sm.output.host), sm.log[0])
