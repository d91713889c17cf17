# benchmark: one fresh instance per environment x workload x round. The bench resource
# (profiles/default: bench=1) keeps two measurements from ever running at the same time on one
# machine; on a cluster every cell is a SLURM job pinned to its host, exclusive (PLAN.pin).
# Inputs are ancient(): a re-provisioned or re-warmed environment does not by itself re-measure;
# what a cell's numbers depend on is in its params, each named for what it is (`snakemake -n`
# says which changed): the environment's effective settings, the workload's parameters, how it is
# measured, the image's content, the code that measures (import closure), and the host.
# Priorities give the measurement order (Plan.cell_priority): round by round, in a round the same
# workload on each of its environments (run.environments_for) back to back in a random order, so a
# drifting host cannot pass for an environment's overhead. Which rounds exist is decided by
# rules/rounds.smk.


rule run_cell:
    input:
        image=image_manifest,
        warmup=ancient(f"{HOSTED}/warmup/{{env}}.json"),
    output:
        directory(f"{HOSTED}/raw/{{env}}/{{workload}}/round-{{round}}"),
    log:
        f"{HOSTED}/logs/run_cell/{{env}}/{{workload}}/round-{{round}}.log",
    priority: lambda w: PLAN.cell_priority(w.env, w.workload, int(w.round))
    conda:
        "../envs/host.yaml"
    resources:
        bench=1,
        slurm_extra=lambda w: PLAN.pin(host_of(w)),
    params:
        settings=lambda w: CFG.env_settings(w.env),
        workload=lambda w: CFG.workload_params(w.workload),
        measure=CFG.measure_settings(),
        image=lambda w: PLAN.image_key(f"{PLAN.base(host_of(w))}/provision/image.json"),
        code=lambda w: PLAN.cell_code(w.env, w.workload),
        host=lambda w: PLAN.host_identity(host_of(w)),
    script:
        "../scripts/run_cell.py"
