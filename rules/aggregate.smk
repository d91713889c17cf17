# aggregate: every cell -> one dataset, per-environment statistics and overhead against native.


rule aggregate:
    input:
        cells=PLAN.cells(),
        envs=expand("results/provision/{env}.json", env=PLAN.environments),
    output:
        cells="results/aggregate/cells.parquet",
        summary="results/aggregate/summary.parquet",
        summary_csv=SUMMARY_CSV,
        overhead="results/aggregate/overhead.parquet",
        overhead_csv="results/aggregate/overhead.csv",
    log:
        "results/logs/aggregate.log",
    script:
        "../scripts/aggregate.py"
