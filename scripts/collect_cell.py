"""Snakemake entry (rule collect_cell): raw outputs of one cell (its directory in the round's raw
output) -> tidy Parquet."""

import logging
from pathlib import Path

from isobench.collect import collect
from isobench.entry import run_step


def main(raw_dir: str, out: str) -> None:
    n = collect(Path(raw_dir), Path(out))
    logging.getLogger("isobench").info("%s: %d rows", out, n)


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    run_step(lambda: main(str(Path(sm.input[0]) / sm.wildcards.env), sm.output[0]), sm.log[0])
