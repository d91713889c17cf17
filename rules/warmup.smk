# warmup: per available environment, start an instance, check every selected workload's tools and
# record the host and inside fingerprints; a broken environment fails here, before any cell.


rule warmup_env:
    input:
        image=ancient(f"{HOSTED}/provision/image.json"),
        env=ancient(f"{HOSTED}/provision/{{env}}.json"),
    output:
        f"{HOSTED}/warmup/{{env}}.json",
    log:
        f"{HOSTED}/logs/warmup_env/{{env}}.log",
    priority: SETUP_PRIORITY
    conda:
        "../envs/host.yaml"
    resources:
        bench=1,
        slurm_extra=lambda w: PLAN.pin(w.get("host")),
    params:
        settings=lambda w: CFG.env_settings(w.env),
        workloads=PLAN.tool_checks(),
    script:
        "../scripts/warmup_env.py"
