"""Snakemake entry (checkpoint round_batch): after a batch of rounds, done or how many to add."""

import logging

from isobench.aggregate import read_cells
from isobench.config import BASELINE
from isobench.entry import run_step
from isobench.rounds import decide
from isobench.util import write_json

log = logging.getLogger("isobench")


def main(cells: list[str], workload: str, rounds: int, policy: dict, primary: list[str], emulated: list[str],
         out: str) -> None:
    record = decide(read_cells(cells), policy, workload=workload, rounds_measured=rounds, baseline=BASELINE,
                    primary=set(primary), emulated=set(emulated))
    write_json(out, record)
    worst = record["worst"] or {}
    state = f"done ({record['stop']})" if record["done"] else f"{record['next']} more round(s)"
    log.info("%s after %d rounds (%d usable, %d flagged): worst half-width %s%% (%s %s %s), target %s%%: %s",
             workload, rounds, record["usable"], len(record["flagged"]),
             f"{worst.get('halfwidth_pct', float('nan')):.1f}", worst.get("env", "-"), worst.get("metric", ""),
             worst.get("point", ""), record["target_pct"], state)


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    run_step(lambda: main(list(sm.input.cells), sm.wildcards.workload, int(sm.params.rounds), dict(sm.params.policy),
                          list(sm.params.primary), list(sm.params.emulated), sm.output[0]), sm.log[0])
