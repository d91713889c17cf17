# benchmark: one fresh instance per environment x workload x round. The bench resource
# (profiles/default: bench=1) keeps two measurements from ever running at the same time.
# Inputs are ancient(): a re-provisioned or re-warmed environment does not by itself re-measure;
# what a cell depends on is in its params, so a changed setting reruns exactly its cells.
# Priorities give the measurement order (Plan.cell_priority): round by round, in a round the same
# workload on every environment back to back in a random order, so a drifting host cannot pass for
# an environment's overhead. Which rounds exist is decided by rules/rounds.smk.


rule run_cell:
    input:
        image=ancient("results/provision/image.json"),
        warmup=ancient("results/warmup/{env}.json"),
    output:
        directory("results/raw/{env}/{workload}/round-{round}"),
    params:
        cell=cell_settings,
        state_dir=STATE_DIR,
    log:
        "results/logs/run_cell/{env}/{workload}/round-{round}.log",
    resources:
        bench=1,
    priority: lambda w: PLAN.cell_priority(w.env, w.workload, int(w.round))
    script:
        "../scripts/run_cell.py"
