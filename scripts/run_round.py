"""Snakemake entry (rule run_round): measure one workload x round on each of its environments."""

import os
from pathlib import Path

from isobench import workloads
from isobench.cell import run_round
from isobench.config import state_dir_of
from isobench.drivers import EnvSpec, StatePaths
from isobench.entry import run_step
from isobench.hostinfo import fingerprint
from isobench.measure import Measure
from isobench.util import read_json


def main(settings: list[dict], workload: dict, measure: dict, seed: int, rnd: int, host: str | None,
         state_dir: str, image_json: str, out: str) -> None:
    # the host as it is when the round runs (the run stops before measuring if it is not the host the
    # results were measured on: pipeline.host_check); named by the config on a cluster, else by itself
    where = {**fingerprint(), **(on_cluster(host) if host else {})}
    run_round([EnvSpec.from_param(s) for s in settings], workloads.from_param(workload), rnd,
              Measure.from_param(measure), StatePaths(Path(state_dir)), read_json(image_json), where, Path(out),
              seed=seed)


def on_cluster(host: str) -> dict:
    """The host as the config names it, and the SLURM node the job really ran on."""
    return {"name": host, "slurm_node": os.environ.get("SLURMD_NODENAME", "")}


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    host = sm.wildcards.get("host")
    run_step(lambda: main([dict(s) for s in sm.params.settings], dict(sm.params.workload), dict(sm.params.measure),
                          int(sm.params.seed), int(sm.wildcards.round), host, state_dir_of(sm.config, host),
                          sm.input.image, sm.output[0]),
             sm.log[0])
