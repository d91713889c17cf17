# cleanup: remove every host object the project made for the state_dir (never results/, never an
# object without its ownership marker), under the host lock the run's onstart takes (refused while
# another run measures). On a cluster, one job per host, on that host, taking that host's lock.


if CFG.cluster:

    rule cleanup:
        input:
            expand("results/hosts/{host}/cleanup.done", host=PLAN.hosts),
        localrule: True
        conda:
            "../envs/host.yaml"

    rule cleanup_host:
        output:
            temp(touch("results/hosts/{host}/cleanup.done")),
        log:
            "results/hosts/{host}/logs/cleanup.log",
        conda:
            "../envs/host.yaml"
        resources:
            slurm_extra=lambda w: PLAN.pin(w.host),
        script:
            "../scripts/cleanup.py"

else:

    rule cleanup:
        log:
            "results/logs/cleanup.log",
        localrule: True
        conda:
            "../envs/host.yaml"
        script:
            "../scripts/cleanup.py"
