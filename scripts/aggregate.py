"""Snakemake entry (rule aggregate): all cells -> dataset, statistics, overhead against native."""

from pathlib import Path

from isobench.aggregate import aggregate
from isobench.entry import run_step


def main(cells: list, envs: list, batches: list, seed: int, out_dir: str) -> None:
    aggregate([Path(c) for c in cells], [Path(e) for e in envs], Path(out_dir), batches=[Path(b) for b in batches],
              seed=seed)


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    run_step(lambda: main(list(sm.input.cells), list(sm.input.envs), list(sm.input.batches), int(sm.params.seed),
                          str(Path(sm.output.summary).parent)),
             sm.log[0])
