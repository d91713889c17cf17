# collect: raw tool output -> one tidy Parquet file per cell (schema: scripts/isobench/schema.py).


rule collect_cell:
    input:
        "results/raw/{env}/{workload}/rep-{rep}",
    output:
        "results/cells/{env}/{workload}/rep-{rep}.parquet",
    params:
        parser=parser_version,
    log:
        "results/logs/collect_cell/{env}/{workload}/rep-{rep}.log",
    script:
        "../scripts/collect_cell.py"
