# aggregate: every cell of every workload's final rounds -> one dataset, per-environment statistics,
# overhead against native paired per round with t-intervals, the A/A noise floor and the precision
# each workload reached (scripts/isobench/aggregate.py, stats.py).


rule aggregate:
    input:
        cells=lambda w: [c for wl in PLAN.workloads for c in final_cells(wl)],
        batches=expand("results/rounds/{workload}/final.json", workload=PLAN.workloads),
        envs=expand("results/provision/{env}.json", env=PLAN.environments),
    output:
        cells="results/aggregate/cells.parquet",
        summary="results/aggregate/summary.parquet",
        summary_csv=SUMMARY_CSV,
        overhead="results/aggregate/overhead.parquet",
        overhead_csv="results/aggregate/overhead.csv",
        calibration="results/aggregate/calibration.parquet",
        calibration_csv="results/aggregate/calibration.csv",
        precision="results/aggregate/precision.parquet",
        precision_csv="results/aggregate/precision.csv",
    params:
        seed=CFG.seed,
        code=PLAN.stats_code(),
    resources:
        bench=1,
    log:
        "results/logs/aggregate.log",
    script:
        "../scripts/aggregate.py"
