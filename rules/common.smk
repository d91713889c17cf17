# Shared definitions: the validated config (CFG), the matrix, and the params each rule passes on.
# Helpers stay thin; the logic lives in scripts/isobench.

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))

from isobench import pipeline  # noqa: E402

PLAN = pipeline.plan_or_exit(config, quiet=not workflow.is_main_process)
if workflow.is_main_process:  # never inside a cluster job: it would see no run and remove the run's lock
    pipeline.release_stale_lock()
CFG = PLAN.config
SETUP_PRIORITY = pipeline.SETUP_PRIORITY

REPORT_HTML = "results/report/report.html"
# everything measured on one host: results/ on one machine, results/hosts/{host}/ on a cluster
HOSTED = PLAN.hosted


wildcard_constraints:
    host="|".join(PLAN.hosts) or "-",
    env="|".join(CFG.environments),
    workload="|".join(CFG.workloads),
    round=r"\d+",
    batch=r"\d+",


def host_of(wildcards):
    """The host a job is about ({host} on a cluster; None on one machine)."""
    return wildcards.get("host")


def on_host(host):
    """The wildcards that name one host's jobs (none on one machine)."""
    return {"host": host} if CFG.cluster else {}


def image_manifest(wildcards):
    """The host's image manifest, once the image exists (provision_image is a checkpoint, so the
    cells' params can name the image by its content: the package versions it holds)."""
    return ancient(checkpoints.provision_image.get(**on_host(host_of(wildcards))).output.image)


def on_start():
    """Preflight checks (root, the host the results were measured on, the host-wide lock) and
    removal of what a crashed earlier run left behind."""
    pipeline.start(CFG, PLAN.host)


def on_finish(success):
    pipeline.finish(CFG, success, REPORT_HTML)


# -- rounds (rules/rounds.smk): which rounds a workload's batch measures, from the batch records --
def batch_first_last(wildcards):
    """Rounds (first, last) that batch {batch} of {workload} measures."""
    k = int(wildcards.batch)
    if k == 0:
        return 1, CFG.round_policy(wildcards.workload).min_rounds
    prev = read_batch(wildcards.workload, k - 1, host_of(wildcards))
    return prev["rounds"] + 1, prev["rounds"] + prev["next"]


def read_batch(workload, k, host=None):
    with open(checkpoints.round_batch.get(workload=workload, batch=k, **on_host(host)).output[0]) as f:
        return json.load(f)


def final_batch(workload, host=None):
    """The last batch of a workload (the one that said done) and its record."""
    k = 0
    while True:
        record = read_batch(workload, k, host)
        if record["done"]:
            return k, record
        k += 1


def batch_cells(wildcards):
    _, last = batch_first_last(wildcards)
    return PLAN.round_cells(wildcards.workload, 1, last, host_of(wildcards))


def previous_batch(wildcards):
    k = int(wildcards.batch)
    return [] if k == 0 else [f"{PLAN.base(host_of(wildcards))}/rounds/{wildcards.workload}/batch-{k - 1}.json"]


def final_cells(workload, host=None):
    _, record = final_batch(workload, host)
    return PLAN.round_cells(workload, 1, record["rounds"], host)
