"""Snakemake entry (rule build_report): the self-contained HTML report from stored results only; every
input path is the rule's, by name."""

from pathlib import Path

from isobench.entry import run_step
from isobench.report import Inputs, build_report


def main(inputs: dict, html: str, figures: str) -> None:
    build_report(Inputs.of(inputs), Path(html), Path(figures))


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    run_step(lambda: main(dict(sm.input.items()),
                          sm.output.html, sm.output.figures), sm.log[0])
