# benchmark: one job per workload x round measures that round on each of its environments
# (round_envs: every environment of the workload in the first batch, later only those still
# undecided, with native) and writes one raw directory per environment. By default the round is
# interleaved (measure order: every instance alive and warmed up once, then blocks of one measured
# iteration per environment, in a random order per block), so the two halves of a pair are measured
# seconds apart; `order: sequential` runs one whole cell after another (scripts/isobench/cell.py).
# The bench resource (profiles/default: bench=1) keeps two measurements from ever running at the
# same time on one machine; on a cluster every round is a SLURM job pinned to its host, exclusive.
# Inputs are ancient(): a re-provisioned or re-warmed environment does not by itself re-measure;
# what the round's numbers depend on is in its params, each named for what it is (`snakemake -n`
# says which changed): its environments' effective settings, the workload's parameters, how it is
# measured, the image's content, the code that measures (import closure), and the host.


rule run_round:
    input:
        image=image_manifest,
        warmups=round_warmups,
    output:
        directory(f"{HOSTED}/raw/{{workload}}/round-{{round}}"),
    log:
        f"{HOSTED}/logs/run_round/{{workload}}/round-{{round}}.log",
    priority: lambda w: PLAN.round_priority(w.workload, int(w.round))
    conda:
        "../envs/host.yaml"
    resources:
        bench=1,
        slurm_extra=lambda w: PLAN.pin(host_of(w)),
    params:
        settings=lambda w: [CFG.env_settings(e) for e in round_wildcards(w)],
        workload=lambda w: CFG.workload_params(w.workload),
        measure=lambda w: CFG.measure_settings(w.workload),
        seed=CFG.seed,
        image=lambda w: PLAN.image_key(f"{PLAN.base(host_of(w))}/provision/image.json"),
        code=lambda w: PLAN.round_code(round_wildcards(w), w.workload),
        host=lambda w: PLAN.host_identity(host_of(w)),
    script:
        "../scripts/run_round.py"
