"""Snakemake entry (rule cluster_report): the host comparison page, linking each host's report."""

from pathlib import Path

from isobench.entry import run_step
from isobench.report.cluster import build_cluster_report

if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    reports = {h: Path(p) for h, p in zip(sm.params.hosts, sm.input.reports)}
    run_step(lambda: build_cluster_report(Path(sm.input.hosts), Path(sm.input.groups), reports, Path(sm.output.html)),
             sm.log[0])
