"""Snakemake entry (rule aggregate): all cells -> dataset, statistics, overhead against native, the
paper comparison, missing results; every output path is the rule's, by name."""

from pathlib import Path

from isobench.aggregate import Outputs, aggregate
from isobench.entry import run_step


def main(cells: list, envs: list, batches: list, workloads: str, paper: str, seed: int, outputs: dict) -> None:
    aggregate([Path(c) for c in cells], [Path(e) for e in envs], Outputs.of(outputs),
              batches=[Path(b) for b in batches], workloads_json=Path(workloads), paper_results=Path(paper),
              seed=seed)


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    run_step(lambda: main(list(sm.input.cells), list(sm.input.envs), list(sm.input.batches), sm.input.workloads,
                          sm.input.paper, int(sm.params.seed), dict(sm.output.items())),
             sm.log[0])
