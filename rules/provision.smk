# provision: the image root filesystem (cached by its package list) and the host's fingerprint, a
# manifest per environment (settings, availability, what its driver built for it), and a
# description of the workloads. On a cluster, per host, as a job on that host.


checkpoint provision_image:
    output:
        image=f"{HOSTED}/provision/image.json",
        host=f"{HOSTED}/provision/host.json",
    log:
        f"{HOSTED}/logs/provision_image.log",
    priority: SETUP_PRIORITY
    conda:
        "../envs/host.yaml"
    resources:
        bench=1,
        slurm_extra=lambda w: PLAN.pin(w.get("host")),
    params:
        spec=CFG.image_spec(),
        state_dir=lambda w: str(CFG.paths_of(w.get("host")).root),
    script:
        "../scripts/provision_image.py"


# availability is a param so that an environment becoming (un)available here re-provisions it
rule provision_env:
    input:
        image=ancient(f"{HOSTED}/provision/image.json"),
    output:
        f"{HOSTED}/provision/{{env}}.json",
    log:
        f"{HOSTED}/logs/provision_env/{{env}}.log",
    priority: SETUP_PRIORITY
    conda:
        "../envs/host.yaml"
    resources:
        bench=1,
        slurm_extra=lambda w: PLAN.pin(w.get("host")),
    params:
        settings=lambda w: CFG.env_settings(w.env),
        availability=lambda w: PLAN.availability(w.env),
    script:
        "../scripts/provision_env.py"


rule describe_workloads:
    output:
        "results/provision/workloads.json",
    log:
        "results/logs/describe_workloads.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    params:
        workloads=PLAN.workload_params(),
        run=PLAN.run_record(),
    script:
        "../scripts/describe_workloads.py"
