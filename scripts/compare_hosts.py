"""Snakemake entry (rule compare_hosts): each host's overheads side by side, and groups pooled."""

from isobench.entry import run_step
from isobench.hosts import compare

if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    run_step(lambda: compare(list(sm.input.cells), dict(sm.output.items()), baseline=sm.params.baseline,
                             groups=dict(sm.params.groups), primary={k: set(v) for k, v in sm.params.primary.items()},
                             gaps=dict(sm.params.gaps)), sm.log[0])
