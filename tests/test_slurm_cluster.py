"""Issue #13: a throwaway two-node SLURM cluster (tests/slurm_cluster.py) runs a tiny workflow
through Snakemake's SLURM executor with the repo's profiles/slurm: jobs land on the node they are
pinned to, the global bench=1 resource does not serialize different hosts while --exclusive
serializes one host, hooks run only on the submit side, a rerun does nothing, and the cluster
leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slurm_cluster import ETC_CONF, SlurmCluster, _alive, available

ROOT = Path(__file__).resolve().parents[1]
OK, WHY = available()
pytestmark = [pytest.mark.e2e, pytest.mark.slurm, pytest.mark.skipif(not OK, reason=WHY)]

# a1, a2 on hostA and b1, b2 on hostB; each holds the global bench=1 resource for 4 s. Pinning both
# ways the plugin allows: a node feature (`constraint`) and a node name (`--nodelist` in slurm_extra),
# each computed from the wildcards.
SNAKEFILE = r'''
import os, socket
HOST = {"a1": "hostA", "a2": "hostA", "b1": "hostB", "b2": "hostB"}
with open("parse.log", "a") as f:  # runs at every parse of the workflow: main process and jobs
    f.write(f"parse job={os.environ.get('SLURM_JOB_ID', '-')} basedir={workflow.basedir}\n")

onstart:
    shell("echo onstart job=${{SLURM_JOB_ID:--}} >> hooks.log")
onsuccess:
    shell("echo onsuccess job=${{SLURM_JOB_ID:--}} >> hooks.log")

rule all:
    input: expand("out/{cell}.txt", cell=HOST)

CELL = ("echo node=${{SLURMD_NODENAME:-local}} job=${{SLURM_JOB_ID:--}} start=$(date +%s.%N) > {output}.tmp; "
        "sleep 4; echo end=$(date +%s.%N) >> {output}.tmp; mv {output}.tmp {output}")

rule by_feature:  # constraint=<node feature> -> sbatch -C hostA
    output: "out/{cell}.txt"
    wildcard_constraints: cell="a1|b1"
    resources:
        bench=1,
        constraint=lambda wc: HOST[wc.cell],
        slurm_extra="'--exclusive'",
    shell: CELL

rule by_name:  # slurm_extra --nodelist=<node name> (not -w: the plugin only forbids the options it sets)
    output: "out/{cell}.txt"
    wildcard_constraints: cell="a2|b2"
    resources:
        bench=1,
        # no outer quotes around several options: the plugin pastes slurm_extra into a shell line
        # as is, and "'--nodelist=hostA --exclusive'" would be ONE argument (node "hostA --exclusive")
        slurm_extra=lambda wc: f"--nodelist={HOST[wc.cell]} --exclusive",
    shell: CELL
'''


def snakemake(workdir: Path, *args: str, env=None) -> tuple[subprocess.CompletedProcess, float]:
    # SIGINT, not timeout's default SIGTERM: on SIGTERM Snakemake waits for its running jobs, on
    # SIGINT it scancels them (then -k KILLs a Snakemake that still hangs)
    cmd = ["timeout", "-s", "INT", "-k", "20", "300", sys.executable, "-m", "snakemake", *args]
    t0 = time.monotonic()
    r = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, check=False)
    return r, time.monotonic() - t0


def cells(workdir: Path) -> dict[str, dict]:
    out = {}
    for f in (workdir / "out").glob("*.txt"):
        kv = dict(w.split("=", 1) for w in f.read_text().split())
        out[f.stem] = {"node": kv["node"], "start": float(kv["start"]), "end": float(kv["end"])}
    return out


def overlap(x: dict, y: dict) -> bool:
    return max(x["start"], y["start"]) < min(x["end"], y["end"])


def test_two_fake_hosts_through_the_slurm_executor(tmp_path, slurm_cluster):
    wf, local = tmp_path / "wf", tmp_path / "local"
    for d in (wf, local):
        d.mkdir()
        (d / "Snakefile").write_text(SNAKEFILE)

    c = slurm_cluster
    assert set(c.pids) == {"munged", "slurmctld", "slurmd-hostA", "slurmd-hostB"}
    assert all(_alive(p) for p in c.pids.values())
    assert ETC_CONF.is_symlink() and ETC_CONF.resolve() == c.conf
    r, slurm_s = snakemake(wf, "--workflow-profile", str(ROOT / "profiles" / "slurm"), env=c.env)
    (tmp_path / "snakemake.err").write_text(r.stderr)
    assert r.returncode == 0, r.stderr[-4000:] + "\n" + c.logs()
    got = cells(wf)
    assert {k: v["node"] for k, v in got.items()} == {
        "a1": "hostA", "a2": "hostA", "b1": "hostB", "b2": "hostB"}
    # bench=1 on different hosts overlaps (the profile lifts the global limit) ...
    assert any(overlap(got[a], got[b]) for a in ("a1", "a2") for b in ("b1", "b2")), got
    # ... while --exclusive keeps one job per host (4 CPUs per node would fit two 1-CPU jobs)
    assert not overlap(got["a1"], got["a2"]) and not overlap(got["b1"], got["b2"]), got
    # hooks: once per Snakemake run, on the submit side only (jobs get --no-hooks) ...
    assert (wf / "hooks.log").read_text().split("\n")[:2] == ["onstart job=-", "onsuccess job=-"]
    # ... but every job re-parses the whole workflow on its node, from the same directory
    parses = (wf / "parse.log").read_text().splitlines()
    assert sum("job=-" not in p for p in parses) >= 4 and all(f"basedir={wf}" in p for p in parses)

    r2, _ = snakemake(wf, "--workflow-profile", str(ROOT / "profiles" / "slurm"), env=c.env)
    assert r2.returncode == 0 and "Nothing to be done" in r2.stdout + r2.stderr, r2.stderr[-3000:]
    assert cells(wf) == got

    # the same Snakefile with the local executor, for the overhead figure
    rl, local_s = snakemake(local, "--cores", "2")
    assert rl.returncode == 0, rl.stderr[-3000:]
    print(f"\nwall time, 4 jobs of 4 s: slurm executor {slurm_s:.1f} s, local --cores 2 {local_s:.1f} s")
    (tmp_path / "timing.txt").write_text(f"slurm {slurm_s:.2f}\nlocal {local_s:.2f}\n")
    # that nothing of the cluster is left after the session: the slurm_cluster fixture (conftest.py)


def test_the_config_link_is_restored_and_a_real_config_is_left_alone(tmp_path):
    before = os.readlink(ETC_CONF) if ETC_CONF.is_symlink() else None    # the session's cluster, if up
    other = tmp_path / "other.conf"
    other.write_text("# someone else's\n")
    try:
        if before is not None:
            ETC_CONF.unlink()
        ETC_CONF.symlink_to(other)  # e.g. another cluster's link: replaced, then put back
        with SlurmCluster(tmp_path / "lab", ["n1"]) as c:
            assert ETC_CONF.resolve() == c.conf and c.node_states() == {"n1": "idle"}
        assert os.readlink(ETC_CONF) == str(other)
        ETC_CONF.unlink()
        ETC_CONF.write_text("# a real SLURM install\n")  # a real file: refused, untouched
        assert available()[0] is False
        with pytest.raises(RuntimeError, match="real file"):
            SlurmCluster(tmp_path / "lab2", ["n1"]).start()
        assert ETC_CONF.read_text() == "# a real SLURM install\n"
    finally:
        if ETC_CONF.is_symlink() or ETC_CONF.exists():
            ETC_CONF.unlink()
        if before is not None:
            ETC_CONF.symlink_to(before)
