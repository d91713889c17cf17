"""Snakemake entry (rule run_cell): measure one environment x workload x round."""

from pathlib import Path

from isobench.cell import run_cell
from isobench.entry import run_step
from isobench.util import read_json


def main(cell: dict, rnd: int, state_dir: str, image_json: str, warmup_json: str, out: str) -> None:
    host = read_json(warmup_json)["host"]
    run_cell(cell["env"], cell["workload"], rnd, cell["iterations"], cell["warmup_iterations"], state_dir,
             read_json(image_json), host, Path(out), settle_s=float(cell.get("settle_s", 0)))


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    run_step(lambda: main(dict(sm.params.cell), int(sm.wildcards.round), sm.params.state_dir, sm.input.image,
                          sm.input.warmup, sm.output[0]), sm.log[0])
