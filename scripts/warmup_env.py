"""Snakemake entry (rule warmup_env): start an instance, check tools, record fingerprints."""

from pathlib import Path

from isobench.cell import warmup
from isobench.entry import run_step
from isobench.util import read_json


def main(settings: dict, workloads: list, state_dir: str, image_json: str, out: str) -> None:
    warmup(settings, workloads, state_dir, read_json(image_json), Path(out))


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    run_step(lambda: main(dict(sm.params.settings), list(sm.params.workloads), sm.params.state_dir,
                          sm.input.image, sm.output[0]), sm.log[0])
