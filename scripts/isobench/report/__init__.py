"""The report: one self-contained HTML file (inline CSS, figures as base64 PNG), from stored outputs only.

Every input is a file the rule names (:class:`~isobench.report.inputs.Inputs`): the aggregate tables
(statistics, overhead, A/A calibration, precision, the paper comparison with its verdicts, the
missing results, each environment's status, with their stored parameters), the environment
manifests, the warm-up records and the workload descriptions. Nothing is measured or computed here:
:mod:`.inputs` reads, :mod:`.matrix` arranges the stored decisions, :mod:`.figures` draws
(matplotlib), :mod:`.html` fills the Jinja2 template ``templates/report.html.j2`` (autoescaped),
:mod:`.fmt` writes numbers and times for people. The
same inputs give the same bytes: no generation timestamp, figures saved without metadata, every
table sorted.

Layout, top to bottom: the answers (:mod:`.matrix`: each primary comparison's stored decision,
ratio and interval, and the paper's claim beside it), the precision reached, the A/A calibration,
the forest plot of every primary overhead, the summary table (each environment as "% slower/faster
than native" with its CI, coloured by its decision; emulated environments say "emulated"),
environments and their status, missing cells, one section per workload (figure, numbers, paper
comparison, rerun command), the CPU cost (table and figures), and the methods (host, environments
as seen from inside, tools, run settings, dates, statistics, the margins).

Emulated (TCG) environments are labelled "emulated" in every table, figure and heading they appear
in, and never get a paper-KVM comparison.
"""

from __future__ import annotations

from pathlib import Path

from ..util import atomic_write_bytes
from .figures import (
    OVERVIEW,
    RenderedFigure,
    figure_overview,
    png_bytes,
    workload_figures,
)
from .fmt import ci_words
from .html import render_html
from .inputs import Inputs, ReportData, load_inputs

__all__ = ["OVERVIEW", "Inputs", "ReportData", "build_report", "ci_words", "load_inputs", "render_html"]


def build_report(inputs: Inputs, out_html: Path, figures_dir: Path, *, baseline: str | None = None) -> list[Path]:
    """Write the HTML report and every figure as ``figures_dir/<name>.png``; return the figure paths.

    Figure names: ``<workload>.png`` (bars, or lines for sweeps), ``<workload>-latency.png`` (latency
    percentiles, for workloads with ``*lat*_pNN`` metrics; fio's as the paper's CDF),
    ``<workload>-bars.png`` for the unswept metrics of a workload that also has swept ones, the CPU
    cost section's ``<workload>-cpu-per-gbit.png`` (network bandwidth) and ``<workload>-cpu-sweep.png``
    (sweeps timed per point), and :data:`OVERVIEW`. All match ``{name}.png``.
    """
    data = load_inputs(inputs, baseline=baseline)
    figures = {w: workload_figures(data, w) for w in data.workload_names()}
    fig = figure_overview(data)
    overview = (RenderedFigure(OVERVIEW, "Every overhead with its 95% interval, coloured by decision", png_bytes(fig))
                if fig else None)
    written = []
    figures_dir = Path(figures_dir)
    figures_dir.mkdir(parents=True, exist_ok=True)
    for figs in [*figures.values(), [overview] if overview else []]:
        for f in figs:
            atomic_write_bytes(figures_dir / f.name, f.png)
            written.append(figures_dir / f.name)
    atomic_write_bytes(out_html, render_html(data, figures, overview).encode())
    return sorted(written)
