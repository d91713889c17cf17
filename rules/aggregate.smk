# aggregate: every cell -> one dataset, per-environment statistics, overhead against native with
# bootstrap intervals, and the A/A noise floor (scripts/isobench/stats.py).


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
        calibration="results/aggregate/calibration.parquet",
        calibration_csv="results/aggregate/calibration.csv",
    log:
        "results/logs/aggregate.log",
    script:
        "../scripts/aggregate.py"
