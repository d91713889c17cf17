"""Snakemake entry (rule provision_image): build or reuse the image root filesystem."""

from pathlib import Path

from isobench.entry import run_step
from isobench.image import ensure_rootfs
from isobench.util import write_json


def main(spec: dict, state_dir: str, out: str) -> None:
    write_json(out, ensure_rootfs(spec, Path(state_dir) / "images"))


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    run_step(lambda: main(dict(sm.params.spec), sm.params.state_dir, sm.output[0]), sm.log[0])
