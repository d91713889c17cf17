# hosts (a cluster only): every host's overheads side by side and the hosts of one group pooled
# (scripts/isobench/hosts.py), and the cluster report linking each host's own report.


if CFG.cluster:

    rule compare_hosts:
        input:
            cells=expand("results/hosts/{host}/aggregate/cells.parquet", host=PLAN.hosts),
        output:
            hosts="results/aggregate/hosts.parquet",
            hosts_csv="results/aggregate/hosts.csv",
            groups="results/aggregate/host_groups.parquet",
            groups_csv="results/aggregate/host_groups.csv",
        log:
            "results/logs/compare_hosts.log",
        localrule: True
        conda:
            "../envs/analysis.yaml"
        params:
            baseline=PLAN.baseline,
            groups=PLAN.host_groups(),
            primary={w: PLAN.primary_metrics(w) for w in PLAN.workloads},
            gaps={w: CFG.round_policy(w).max_pair_gap_s for w in PLAN.workloads},
            code=PLAN.stats_code(),
        script:
            "../scripts/compare_hosts.py"

    rule cluster_report:
        input:
            hosts="results/aggregate/hosts.parquet",
            groups="results/aggregate/host_groups.parquet",
            reports=expand("results/hosts/{host}/report/report.html", host=PLAN.hosts),
        output:
            html=REPORT_HTML,
        log:
            "results/logs/cluster_report.log",
        localrule: True
        conda:
            "../envs/analysis.yaml"
        params:
            hosts=PLAN.hosts,
        script:
            "../scripts/build_cluster_report.py"
