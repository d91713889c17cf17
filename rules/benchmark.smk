# benchmark: one fresh instance per environment x workload x repetition. The bench resource
# (profiles/default: bench=1) keeps two measurements from ever running at the same time.
# Inputs are ancient(): a re-provisioned or re-warmed environment does not by itself re-measure;
# what a cell depends on is in its params, so a changed setting reruns exactly its cells.
# Priorities give the measurement order of Plan.cell_order(): the same workload on every
# environment back to back, so a drifting host cannot pass for an environment's overhead.


rule run_cell:
    input:
        image=ancient("results/provision/image.json"),
        warmup=ancient("results/warmup/{env}.json"),
    output:
        directory("results/raw/{env}/{workload}/rep-{rep}"),
    params:
        cell=cell_settings,
        state_dir=STATE_DIR,
    log:
        "results/logs/run_cell/{env}/{workload}/rep-{rep}.log",
    resources:
        bench=1,
    priority: lambda w: PLAN.cell_priority(w.env, w.workload, int(w.rep))
    script:
        "../scripts/run_cell.py"
