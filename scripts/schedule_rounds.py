"""Snakemake entry (checkpoint schedule_rounds): after a batch of rounds, each workload's decision
and the rounds the next batch measures, within the run's time budget."""

import logging
import sys
from datetime import UTC, datetime, timedelta

from isobench.aggregate import read_cells
from isobench.config import BASELINE
from isobench.entry import run_step
from isobench.schedule import progress, schedule
from isobench.util import write_json

log = logging.getLogger("isobench")


def main(cells: list[str], batch: int, policies: dict, rounds: dict, planned: dict, environments: dict,
         primary: dict, emulated: list[str], budget_s: float, out: str) -> None:
    record = schedule(read_cells(cells), batch=batch, policies=policies, rounds=rounds, planned=planned,
                      environments=environments, primary=primary, emulated=emulated, baseline=BASELINE,
                      budget_s=budget_s)
    write_json(out, record)
    lines = progress(record)
    if not record["done"]:
        finish = datetime.now(UTC) + timedelta(seconds=record["next_s"])
        lines[-1] += f"; this batch ends ~{finish:%H:%M} UTC"
    for line in lines:
        log.info("%s", line)
        print(f"isobench: {line}", file=sys.stderr)


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    run_step(lambda: main(list(sm.input.cells), int(sm.wildcards.batch), dict(sm.params.policies),
                          dict(sm.params.rounds), dict(sm.params.planned), dict(sm.params.environments),
                          dict(sm.params.primary),
                          list(sm.params.emulated), float(sm.params.budget_s), sm.output[0]), sm.log[0])
