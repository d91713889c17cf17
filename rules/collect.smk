# collect: raw tool output -> one tidy Parquet file per cell (schema: scripts/isobench/schema.py),
# from the cell's directory in its round's raw output. On a cluster it runs where Snakemake runs
# (localrule), on the shared results directory.


rule collect_cell:
    input:
        f"{HOSTED}/raw/{{workload}}/round-{{round}}",
    output:
        f"{HOSTED}/cells/{{env}}/{{workload}}/round-{{round}}.parquet",
    log:
        f"{HOSTED}/logs/collect_cell/{{env}}/{{workload}}/round-{{round}}.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    resources:
        bench=1,
    params:
        parser=lambda w: PLAN.parser_code(w.workload),
    script:
        "../scripts/collect_cell.py"
