"""Snakemake entry (rule warmup_env): start an instance, check tools, record fingerprints."""

from pathlib import Path

from isobench import workloads
from isobench.cell import warmup
from isobench.config import state_dir_of
from isobench.drivers import EnvSpec, StatePaths
from isobench.entry import run_step
from isobench.util import read_json


def main(settings: dict, tool_checks: list, state_dir: str, image_json: str, out: str, host: str | None) -> None:
    warmup(EnvSpec.from_param(settings), [workloads.from_param(w) for w in tool_checks], StatePaths(Path(state_dir)),
           read_json(image_json), Path(out), host=host)


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    host = sm.wildcards.get("host")
    run_step(lambda: main(dict(sm.params.settings), list(sm.params.workloads), state_dir_of(sm.config, host),
                          sm.input.image, sm.output[0], host), sm.log[0])
