# aggregate: every cell of every workload's final rounds -> one dataset, per-environment statistics,
# overhead against native paired per round with t-intervals, the A/A noise floor, the precision
# each workload reached, and what the report shows without computing it: the comparison with the
# paper, the missing results, the A/A check against chance and each environment's status
# (scripts/isobench/aggregate.py, compare.py, stats.py). Each output is passed by its name.


rule aggregate:
    input:
        cells=lambda w: [c for wl in PLAN.workloads for c in final_cells(wl)],
        batches=expand("results/rounds/{workload}/final.json", workload=PLAN.workloads),
        envs=expand("results/provision/{env}.json", env=PLAN.environments),
        workloads="results/provision/workloads.json",
        paper=f"{workflow.basedir}/report/paper_results.yaml",
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
        paper="results/aggregate/paper.parquet",
        paper_csv="results/aggregate/paper.csv",
        missing="results/aggregate/missing.parquet",
        missing_csv="results/aggregate/missing.csv",
        aa_check="results/aggregate/aa_check.parquet",
        aa_check_csv="results/aggregate/aa_check.csv",
        environments="results/aggregate/environments.parquet",
        environments_csv="results/aggregate/environments.csv",
    log:
        "results/logs/aggregate.log",
    resources:
        bench=1,
    params:
        seed=CFG.seed,
        code=PLAN.stats_code(),
    script:
        "../scripts/aggregate.py"
