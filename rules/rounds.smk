# rounds: how many rounds each workload gets (on a cluster: on each host). A round measures the
# workload on each of its environments (PLAN.environments_of) back to back in a random order
# (priorities: PLAN.cell_priority).
# After each batch of rounds the checkpoint decides from the measured cells whether the overheads
# reached their precision target or a cap (scripts/isobench/rounds.py); if not, the next batch's
# cells join the DAG. Every cached round is reused; adding rounds never re-measures one. The
# functions that read the batch records are in rules/common.smk.


checkpoint round_batch:
    input:
        cells=batch_cells,
        previous=previous_batch,
    output:
        f"{HOSTED}/rounds/{{workload}}/batch-{{batch}}.json",
    log:
        f"{HOSTED}/logs/round_batch/{{workload}}/batch-{{batch}}.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    resources:
        bench=1,
    params:
        policy=lambda w: CFG.round_policy(w.workload).as_dict(),
        rounds=lambda w: batch_first_last(w)[1],
        primary=lambda w: PLAN.primary_metrics(w.workload),
        emulated=PLAN.emulated_environments(),
        code=PLAN.stats_code(),
    script:
        "../scripts/round_batch.py"


# One per workload (and host), so that every workload's chain of batches is planned on its own
# (the DAG shows the next batch of each workload, and rounds stay interleaved across workloads).
rule rounds_final:
    input:
        cells=lambda w: final_cells(w.workload, host_of(w)),
        batch=lambda w: f"{PLAN.base(host_of(w))}/rounds/{w.workload}/batch-{final_batch(w.workload, host_of(w))[0]}.json",
    output:
        f"{HOSTED}/rounds/{{workload}}/final.json",
    log:
        f"{HOSTED}/logs/rounds_final/{{workload}}.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    shell:
        "cp {input.batch} {output} 2> {log}"
