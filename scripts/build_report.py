"""Snakemake entry (rule build_report): the self-contained HTML report from stored results only."""

from pathlib import Path

from isobench.entry import run_step
from isobench.report import build_report


def main(aggregate_dir: str, envs: list, warmups: list, workloads: str, paper: str, html: str,
         figures: str) -> None:
    build_report(Path(aggregate_dir), [Path(e) for e in envs], [Path(w) for w in warmups], Path(workloads),
                 Path(html), Path(figures), paper_results=Path(paper))


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    run_step(lambda: main(str(Path(sm.input.aggregate).parent), list(sm.input.envs), list(sm.input.warmups),
                          sm.input.workloads, sm.input.paper, sm.output.html, sm.output.figures), sm.log[0])
