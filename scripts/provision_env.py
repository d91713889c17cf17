"""Snakemake entry (rule provision_env): one environment's manifest (settings, availability, artifacts)."""

from isobench.cell import make_driver
from isobench.entry import run_step
from isobench.util import read_json, write_json


def main(settings: dict, availability: dict, state_dir: str, image_json: str, out: str) -> None:
    driver = make_driver(settings, state_dir, read_json(image_json))
    artifacts = {}
    if availability["available"] and hasattr(driver, "provision"):
        artifacts = driver.provision()
    write_json(out, {"env": settings["env"], "driver": settings["driver"], **availability,
                     "settings": driver.settings(), "artifacts": artifacts})


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    run_step(lambda: main(dict(sm.params.settings), dict(sm.params.availability), sm.params.state_dir,
                          sm.input.image, sm.output[0]), sm.log[0])
