# isobench: what isolation costs, native vs LXC vs KVM (after Felter et al., ISPASS 2015).
# This file is the table of contents; rules/ holds one file per stage, scripts/ the logic.

from snakemake.utils import min_version

min_version("9.0")


# the default config lives with the workflow, so `-d elsewhere` (the tests) finds it too
configfile: f"{workflow.basedir}/config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/provision.smk"
include: "rules/warmup.smk"
include: "rules/benchmark.smk"
include: "rules/collect.smk"
include: "rules/rounds.smk"
include: "rules/aggregate.smk"
include: "rules/report.smk"
include: "rules/hosts.smk"
include: "rules/cleanup.smk"


rule all:
    default_target: True
    input:
        PLAN.targets(),


onstart:
    on_start()


onsuccess:
    on_finish(success=True)


onerror:
    on_finish(success=False)
