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
    print(f"isobench: {PLAN.announce()}", file=sys.stderr)


def on_finish(success):
    pipeline.finish(CFG, success, REPORT_HTML)


#: rounds of the first batch: one of every workload, then the schedule knows what a round costs
PILOT_ROUNDS = 1


# -- rounds (rules/rounds.smk): which rounds each batch measures, on which environments, from the
# schedule records (one per batch, for every workload of the run) --
def read_schedule(k, host=None):
    with open(checkpoints.schedule_rounds.get(batch=k, **on_host(host)).output[0]) as f:
        return json.load(f)


def schedules(host=None):
    """The schedule records, batch by batch, up to the final one (done)."""
    k = 0
    while True:
        record = read_schedule(k, host)
        yield k, record
        if record["done"]:
            return
        k += 1


def batch_rounds(k, host=None):
    """workload -> (first, last, environments) of the rounds batch ``k`` measures."""
    if k == 0:  # the pilot: one round of every workload, on all its environments (what a round costs)
        return {w: (1, PILOT_ROUNDS, PLAN.environments_of(w)) for w in PLAN.workloads}
    prev = read_schedule(k - 1, host)["workloads"]
    return {w: (r["rounds"] + 1, r["rounds"] + r["next"], r["measure"]) for w, r in prev.items() if r["next"] > 0}


def round_envs(workload, rnd, host=None):
    """The environments round ``rnd`` of ``workload`` measures (later batches: only those whose
    comparisons are still undecided, with native)."""
    k = 0
    while True:
        first, last, envs = batch_rounds(k, host).get(workload, (0, -1, []))
        if first <= rnd <= last:
            return [e for e in PLAN.environments_of(workload) if e in envs]
        if k > 0 and read_schedule(k - 1, host)["done"]:
            raise ValueError(f"round {rnd} of {workload} is in no batch")
        k += 1


def rounds_measured(k, host=None):
    """workload -> the rounds it has once batch ``k`` is measured."""
    if k == 0:
        return {w: PILOT_ROUNDS for w in PLAN.workloads}
    prev = read_schedule(k - 1, host)["workloads"]
    return {w: r["rounds"] + r["next"] for w, r in prev.items()}


def planned_rounds(k, host=None):
    """workload -> environment -> the rounds it is measured in, up to and including batch ``k``."""
    planned = {w: {} for w in PLAN.workloads}
    for j in range(k + 1):
        for w, (first, last, envs) in batch_rounds(j, host).items():
            for e in PLAN.environments_of(w):
                if e in envs:
                    planned[w].setdefault(e, []).extend(range(first, last + 1))
    return planned


def measured_cells(k, host=None):
    """The cells of every round measured up to and including batch ``k``."""
    return [
        PLAN.cell_path(e, w, r, host)
        for w, envs in planned_rounds(k, host).items()
        for e, rounds in envs.items()
        for r in rounds
    ]


def batch_cells(wildcards):
    return measured_cells(int(wildcards.batch), host_of(wildcards))


def previous_batch(wildcards):
    k = int(wildcards.batch)
    return [] if k == 0 else [f"{PLAN.base(host_of(wildcards))}/rounds/batch-{k - 1}.json"]


def final_batch(host=None):
    """The number of the last batch (the one that said done)."""
    return max(k for k, _ in schedules(host))


def final_cells(host=None):
    return measured_cells(final_batch(host), host)


def round_wildcards(wildcards):
    """The round job's environments, as its params see them."""
    return round_envs(wildcards.workload, int(wildcards.round), host_of(wildcards))


def round_warmups(wildcards):
    base = PLAN.base(host_of(wildcards))
    return [ancient(f"{base}/warmup/{e}.json") for e in round_wildcards(wildcards)]
