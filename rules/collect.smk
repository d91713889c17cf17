# collect: raw tool output -> one tidy Parquet file per cell (schema: scripts/isobench/schema.py).


rule collect_cell:
    input:
        "results/raw/{env}/{workload}/round-{round}",
    output:
        "results/cells/{env}/{workload}/round-{round}.parquet",
    params:
        parser=lambda w: PLAN.parser_code(w.workload),
    resources:
        bench=1,
    log:
        "results/logs/collect_cell/{env}/{workload}/round-{round}.log",
    script:
        "../scripts/collect_cell.py"
