# rounds: how many rounds each workload gets. A round measures the workload on every environment
# back to back in a random order (priorities: PLAN.cell_priority). After each batch of rounds the
# checkpoint decides from the measured cells whether the overheads reached their precision target
# or a cap (scripts/isobench/rounds.py); if not, the next batch's cells join the DAG. Every cached
# round is reused; adding rounds never re-measures one.


def batch_first_last(wildcards):
    """Rounds (first, last) that batch {batch} of {workload} measures."""
    k = int(wildcards.batch)
    if k == 0:
        return 1, CFG.round_policy(wildcards.workload).min_rounds
    prev = read_batch(wildcards.workload, k - 1)
    return prev["rounds"] + 1, prev["rounds"] + prev["next"]


def read_batch(workload, k):
    with open(checkpoints.round_batch.get(workload=workload, batch=k).output[0]) as f:
        return json.load(f)


def final_batch(workload):
    """The last batch of a workload (the one that said done) and its record."""
    k = 0
    while True:
        record = read_batch(workload, k)
        if record["done"]:
            return k, record
        k += 1


def batch_cells(wildcards):
    _, last = batch_first_last(wildcards)
    return PLAN.round_cells(wildcards.workload, 1, last)


def previous_batch(wildcards):
    k = int(wildcards.batch)
    return [] if k == 0 else [f"results/rounds/{wildcards.workload}/batch-{k - 1}.json"]


def final_cells(workload):
    _, record = final_batch(workload)
    return PLAN.round_cells(workload, 1, record["rounds"])




checkpoint round_batch:
    input:
        cells=batch_cells,
        previous=previous_batch,
    output:
        "results/rounds/{workload}/batch-{batch}.json",
    params:
        policy=lambda w: CFG.round_policy(w.workload).as_dict(),
        rounds=lambda w: batch_first_last(w)[1],
        primary=lambda w: PLAN.primary_metrics(w.workload),
        emulated=PLAN.emulated_environments(),
        code=PLAN.stats_code(),
    log:
        "results/logs/round_batch/{workload}/batch-{batch}.log",
    resources:
        bench=1,
    script:
        "../scripts/round_batch.py"


# One per workload, so that every workload's chain of batches is planned on its own (the DAG shows
# the next batch of each workload, and rounds stay interleaved across workloads).
rule rounds_final:
    input:
        cells=lambda w: final_cells(w.workload),
        batch=lambda w: f"results/rounds/{w.workload}/batch-{final_batch(w.workload)[0]}.json",
    output:
        "results/rounds/{workload}/final.json",
    localrule: True
    shell:
        "cp {input.batch} {output}"
