# aggregate: every cell of every workload's final rounds -> one dataset, per-environment statistics,
# overhead against native paired per round with t-intervals, the A/A noise floor, the precision
# each workload reached, and what the report shows without computing it: the comparison with the
# paper, the missing results, the A/A check against chance and each environment's status
# (scripts/isobench/aggregate.py, compare.py, stats.py). Each output is passed by its name.


rule aggregate:
    input:
        cells=lambda w: final_cells(host_of(w)),
        batches=expand(f"{HOSTED}/rounds/{{workload}}/final.json", workload=PLAN.workloads, allow_missing=True),
        envs=expand(f"{HOSTED}/provision/{{env}}.json", env=PLAN.environments, allow_missing=True),
        workloads="results/provision/workloads.json",
        paper=f"{workflow.basedir}/report/paper_results.yaml",
    output:
        cells=f"{HOSTED}/aggregate/cells.parquet",
        summary=f"{HOSTED}/aggregate/summary.parquet",
        summary_csv=f"{HOSTED}/aggregate/summary.csv",
        overhead=f"{HOSTED}/aggregate/overhead.parquet",
        overhead_csv=f"{HOSTED}/aggregate/overhead.csv",
        calibration=f"{HOSTED}/aggregate/calibration.parquet",
        calibration_csv=f"{HOSTED}/aggregate/calibration.csv",
        precision=f"{HOSTED}/aggregate/precision.parquet",
        precision_csv=f"{HOSTED}/aggregate/precision.csv",
        paper=f"{HOSTED}/aggregate/paper.parquet",
        paper_csv=f"{HOSTED}/aggregate/paper.csv",
        missing=f"{HOSTED}/aggregate/missing.parquet",
        missing_csv=f"{HOSTED}/aggregate/missing.csv",
        aa_check=f"{HOSTED}/aggregate/aa_check.parquet",
        aa_check_csv=f"{HOSTED}/aggregate/aa_check.csv",
        environments=f"{HOSTED}/aggregate/environments.parquet",
        environments_csv=f"{HOSTED}/aggregate/environments.csv",
        cpu_cost=f"{HOSTED}/aggregate/cpu_cost.parquet",
        cpu_cost_csv=f"{HOSTED}/aggregate/cpu_cost.csv",
    log:
        f"{HOSTED}/logs/aggregate.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    resources:
        bench=1,
    params:
        seed=CFG.seed,
        code=PLAN.stats_code(),
    script:
        "../scripts/aggregate.py"
