"""Issue #13: the matrix on two hosts through Snakemake's SLURM executor (profiles/slurm), on a
throwaway two-node cluster on this machine (tests/slurm_cluster.py): every cell runs on the node it
belongs to, results land in the per-host layout, the cluster report compares both hosts, a rerun
does nothing, and nothing is left behind (the cluster itself: conftest.py's slurm_cluster)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT, SLURM_HOSTS
from leftovers import host_leftovers
from slurm_cluster import available

OK, WHY = available()
pytestmark = [pytest.mark.e2e, pytest.mark.slurm, pytest.mark.skipif(not OK, reason=WHY)]

CONFIG = ROOT / "tests" / "configs" / "cluster_tiny.yaml"
HOSTS = SLURM_HOSTS     # the session's cluster (the slurm_cluster fixture)


def snakemake(wd: Path, *args: str, env=None) -> tuple[subprocess.CompletedProcess, float]:
    # SIGINT on timeout: Snakemake then cancels its SLURM jobs (SIGTERM waits for them)
    cmd = ["timeout", "-s", "INT", "-k", "30", "1200", sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"),
           "-d", str(wd), "--workflow-profile", str(ROOT / "profiles" / "slurm"), "--configfile", str(CONFIG),
           *args, "--", "all"]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    return proc, time.monotonic() - t0


def test_the_matrix_on_two_hosts_through_slurm(tmp_path, slurm_cluster):
    wd = tmp_path / "wd"
    c = slurm_cluster
    r, seconds = snakemake(wd, "--jobs", "4", env=c.env)
    (tmp_path / "snakemake.err").write_text(r.stderr)
    assert r.returncode == 0, r.stderr[-5000:] + "\n" + c.logs()
    for host in HOSTS:
        base = wd / "results" / "hosts" / host
        for env in ("native", "lxc_host"):
            for rnd in (1, 2, 3):
                meta = json.loads((base / "raw" / "compression" / f"round-{rnd}" / env / "cell.json").read_text())
                # the node the job really ran on (slurmd's SLURMD_NODENAME), not just the path
                assert meta["host"]["slurm_node"] == host and meta["host"]["name"] == host
                rows = pd.read_parquet(base / "cells" / env / "compression" / f"round-{rnd}.parquet")
                assert set(rows["host"]) == {host}
        assert (base / "report" / "report.html").exists()
    per_host = pd.read_csv(wd / "results" / "aggregate" / "hosts.csv")
    assert set(per_host["host"]) == set(HOSTS)
    assert set(per_host["env"]) == {"lxc_host"}
    groups = pd.read_csv(wd / "results" / "aggregate" / "host_groups.csv")
    assert list(groups["n_hosts"].unique()) == [2] and (groups["n_rounds"] == 6).all()
    html = (wd / "results" / "report" / "report.html").read_text()
    assert "Host comparison" in html and all(f"hosts/{h}/report/report.html" in html for h in HOSTS)

    again, _ = snakemake(wd, "--jobs", "4", "-n", env=c.env)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stdout[-3000:]
    print(f"\nwall time, two hosts x 2 environments x 3 rounds through SLURM: {seconds:.1f} s")
    (tmp_path / "timing.txt").write_text(f"slurm {seconds:.2f}\n")
    assert host_leftovers() == []      # the cluster's own leftovers: checked by the fixture after the session
