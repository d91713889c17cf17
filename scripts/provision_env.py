"""Snakemake entry (rule provision_env): one environment's manifest (settings, availability, artifacts)."""

from pathlib import Path

from isobench.cell import provision
from isobench.config import state_dir_of
from isobench.drivers import EnvSpec, StatePaths
from isobench.entry import run_step
from isobench.util import read_json, write_json


def main(settings: dict, state_dir: str, image_json: str, out: str) -> None:
    write_json(out, provision(EnvSpec.from_param(settings), StatePaths(Path(state_dir)), read_json(image_json)))


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    host = sm.wildcards.get("host")
    run_step(lambda: main(dict(sm.params.settings), state_dir_of(sm.config, host), sm.input.image, sm.output[0]),
             sm.log[0])
