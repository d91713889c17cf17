# rounds: how many rounds each workload gets, and on which environments (on a cluster: on each
# host). After each batch of rounds the checkpoint decides from the measured cells, for every
# workload, whether its comparisons are decided (scripts/isobench/rounds.py) and where the rest of
# the time budget goes (scripts/isobench/schedule.py); the next batch's rounds join the DAG. Every
# cached round is reused; adding rounds never re-measures one. The functions that read the
# schedule records are in rules/common.smk.


checkpoint schedule_rounds:
    input:
        cells=batch_cells,
        previous=previous_batch,
    output:
        f"{HOSTED}/rounds/batch-{{batch}}.json",
    log:
        f"{HOSTED}/logs/schedule_rounds/batch-{{batch}}.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    resources:
        bench=1,
    params:
        policies={w: CFG.round_policy(w).as_dict() for w in PLAN.workloads},
        rounds=lambda w: rounds_measured(int(w.batch), host_of(w)),
        planned=lambda w: planned_rounds(int(w.batch), host_of(w)),
        environments={w: PLAN.environments_of(w) for w in PLAN.workloads},
        primary={w: PLAN.primary_metrics(w) for w in PLAN.workloads},
        emulated=PLAN.emulated_environments(),
        budget_s=CFG.budget_s,
        code=PLAN.stats_code(),
    script:
        "../scripts/schedule_rounds.py"


rule rounds_final:
    input:
        batch=lambda w: f"{PLAN.base(host_of(w))}/rounds/batch-{final_batch(host_of(w))}.json",
    output:
        f"{HOSTED}/rounds/{{workload}}/final.json",
    log:
        f"{HOSTED}/logs/rounds_final/{{workload}}.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    script:
        "../scripts/rounds_final.py"
