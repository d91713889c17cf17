"""Snakemake entry (rule describe_workloads): what each workload measures, for the report."""

from dataclasses import asdict

from isobench import workloads as wlmod
from isobench.entry import run_step
from isobench.util import write_json


def main(workloads: list, run: dict, out: str) -> None:
    doc = {"_run": run}
    for params in workloads:
        wl = wlmod.from_param(params)
        doc[wl.name] = {"kind": wl.kind, "description": wl.describe(), "params": wl.params,
                        "metrics": {k: asdict(m) for k, m in wl.METRICS.items()},
                        "rerun": f"snakemake --cores 1 all --forcerun results/raw/{wl.name}/round-*"}
    write_json(out, doc)


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    run_step(lambda: main(list(sm.params.workloads), dict(sm.params.run), sm.output[0]), sm.log[0])
