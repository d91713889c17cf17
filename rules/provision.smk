# provision: the image root filesystem (cached by its package list), a manifest per environment
# (settings, availability, KVM guest artifacts) and a description of the workloads.


checkpoint provision_image:
    output:
        "results/provision/image.json",
    params:
        spec=CFG.image_spec(),
        state_dir=STATE_DIR,
    log:
        "results/logs/provision_image.log",
    resources:
        bench=1,
    priority: SETUP_PRIORITY
    script:
        "../scripts/provision_image.py"


rule provision_env:
    input:
        image=ancient("results/provision/image.json"),
    output:
        "results/provision/{env}.json",
    params:
        settings=lambda w: CFG.env_settings(w.env),
        availability=lambda w: PLAN.availability(w.env),
    log:
        "results/logs/provision_env/{env}.log",
    resources:
        bench=1,
    priority: SETUP_PRIORITY
    script:
        "../scripts/provision_env.py"


rule describe_workloads:
    output:
        "results/provision/workloads.json",
    params:
        workloads=PLAN.workload_params(),
        run=PLAN.run_record(),
    log:
        "results/logs/describe_workloads.log",
    script:
        "../scripts/describe_workloads.py"
