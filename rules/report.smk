# report: one self-contained HTML file from stored outputs only (the aggregate tables, the
# manifests, warm-ups and workload descriptions), every file it reads named here and passed by
# name; figures also go to snakemake --report.


rule build_report:
    input:
        summary=f"{HOSTED}/aggregate/summary.parquet",
        overhead=f"{HOSTED}/aggregate/overhead.parquet",
        calibration=f"{HOSTED}/aggregate/calibration.parquet",
        precision=f"{HOSTED}/aggregate/precision.parquet",
        paper=f"{HOSTED}/aggregate/paper.parquet",
        missing=f"{HOSTED}/aggregate/missing.parquet",
        aa_check=f"{HOSTED}/aggregate/aa_check.parquet",
        environments=f"{HOSTED}/aggregate/environments.parquet",
        cpu_cost=f"{HOSTED}/aggregate/cpu_cost.parquet",
        envs=expand(f"{HOSTED}/provision/{{env}}.json", env=PLAN.environments, allow_missing=True),
        warmups=expand(f"{HOSTED}/warmup/{{env}}.json", env=PLAN.available_environments, allow_missing=True),
        workloads="results/provision/workloads.json",
    output:
        html=report(
            f"{HOSTED}/report/report.html",
            caption="../report/captions/report.rst",
            category="Report",
        ),
        figures=report(
            directory(f"{HOSTED}/report/figures"),
            patterns=["{name}.png"],
            caption="../report/captions/figure.rst",
            category="Figures",
        ),
    log:
        f"{HOSTED}/logs/build_report.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    script:
        "../scripts/build_report.py"
