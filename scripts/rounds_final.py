"""Snakemake entry (rule rounds_final): one workload's record in the final schedule."""

from isobench.entry import run_step
from isobench.util import read_json, write_json


def main(schedule: str, workload: str, out: str) -> None:
    write_json(out, read_json(schedule)["workloads"][workload])


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    run_step(lambda: main(sm.input.batch, sm.wildcards.workload, sm.output[0]), sm.log[0])
