# warmup: per available environment, start an instance, check every selected workload's tools and
# record the host and inside fingerprints; a broken environment fails here, before any cell.


rule warmup_env:
    input:
        image=ancient("results/provision/image.json"),
        env=ancient("results/provision/{env}.json"),
    output:
        "results/warmup/{env}.json",
    params:
        settings=lambda w: CFG.env_settings(w.env),
        workloads=PLAN.tool_checks(),
    log:
        "results/logs/warmup_env/{env}.log",
    resources:
        bench=1,
    priority: SETUP_PRIORITY
    script:
        "../scripts/warmup_env.py"
