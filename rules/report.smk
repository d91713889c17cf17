# report: one self-contained HTML file from stored outputs only (the aggregate tables, the
# manifests, warm-ups and workload descriptions), every file it reads named here and passed by
# name; figures also go to snakemake --report.


rule build_report:
    input:
        summary="results/aggregate/summary.parquet",
        overhead="results/aggregate/overhead.parquet",
        calibration="results/aggregate/calibration.parquet",
        precision="results/aggregate/precision.parquet",
        paper="results/aggregate/paper.parquet",
        missing="results/aggregate/missing.parquet",
        aa_check="results/aggregate/aa_check.parquet",
        environments="results/aggregate/environments.parquet",
        envs=expand("results/provision/{env}.json", env=PLAN.environments),
        warmups=expand("results/warmup/{env}.json", env=PLAN.available_environments),
        workloads="results/provision/workloads.json",
    output:
        html=report(
            REPORT_HTML, caption="../report/captions/report.rst", category="Report"
        ),
        figures=report(
            directory("results/report/figures"),
            patterns=["{name}.png"],
            caption="../report/captions/figure.rst",
            category="Figures",
        ),
    log:
        "results/logs/build_report.log",
    script:
        "../scripts/build_report.py"
