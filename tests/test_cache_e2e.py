"""The cache through Snakemake, on a copy of the workflow: each change re-measures exactly the rounds
and re-collects exactly the cells whose numbers depend on it (counted from the dry run), and a changed host stops
the run before anything is measured.

A tiny matrix (native and lxc_host; compression, linpack and randomaccess; one round) runs once in
a copy of the workflow; each test edits the copy (or the config) and counts the jobs Snakemake
plans.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.e2e

TINY = ROOT / "tests" / "configs" / "tiny.yaml"
ENVS = ["native", "lxc_host"]
WORKLOADS = ["compression", "linpack", "randomaccess"]
SMALL = {"workloads": {"linpack": {"kind": "linpack", "n": 256, "nb": 32, "trials": 1, "processes": 2},
                       "randomaccess": {"kind": "randomaccess", "n": 256, "processes": 2}}}


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    """A copy of the workflow (code included) and a working directory with one finished run."""
    base = tmp_path_factory.mktemp("cache")
    src = base / "flow"
    src.mkdir()
    for part in ("Snakefile", "rules", "scripts", "config", "report", "profiles", "envs"):
        p = ROOT / part
        (shutil.copytree(p, src / part, ignore=shutil.ignore_patterns("__pycache__"))
         if p.is_dir() else shutil.copy(p, src / part))
    small = base / "small.yaml"
    small.write_text(json.dumps(SMALL))
    wd = base / "wd"
    wd.mkdir()
    flow = {"src": src, "wd": wd, "configs": [TINY, small]}
    run(flow)
    return flow


def run(flow, *flags, configs=(), env=None, check=True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(flow["src"] / "Snakefile"), "-d", str(flow["wd"]),
           "--cores", "1", *flags, "--configfile", *map(str, [*flow["configs"], *configs]),
           "--config", f"run={json.dumps({'environments': ENVS, 'workloads': WORKLOADS})}", "--", "all"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def planned(flow, *, configs=(), env=None) -> Counter:
    """(rule, workload) -> jobs the dry run plans."""
    out = run(flow, "-n", configs=configs, env=env).stdout
    jobs = Counter()
    for rule, body in re.findall(r"^rule (\w+):\n((?:    .*\n)+)", out, re.M):
        wl = re.search(r"workload=(\w+)", body)
        jobs[(rule, wl[1] if wl else "")] += 1
    return jobs


def edit(path: Path, old: str, new: str) -> str:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))
    return text


def measured(jobs: Counter) -> Counter:
    """workload -> rounds re-measured (one run_round job measures every environment of a round)"""
    return Counter({wl: n for (rule, wl), n in jobs.items() if rule == "run_round"})


def collected(jobs: Counter) -> Counter:
    return Counter({wl: n for (rule, wl), n in jobs.items() if rule == "collect_cell"})


def test_nothing_changed_plans_nothing(flow):
    assert "Nothing to be done" in run(flow, "-n").stdout


def test_a_changed_command_re_measures_exactly_that_workload(flow):
    path = flow["src"] / "scripts" / "isobench" / "workloads" / "compression.py"
    old = edit(path, "xz -T{p['threads']} -{p['level']} -c", "xz -T{p['threads']} -{p['level']} -qc")
    try:
        jobs = planned(flow)
        assert measured(jobs) == Counter({"compression": 1}) and collected(jobs) == Counter({"compression": 2})
    finally:
        path.write_text(old)


def test_a_changed_hpcc_parser_re_collects_without_re_measuring(flow):
    path = flow["src"] / "scripts" / "isobench" / "workloads" / "hpcc.py"
    old = edit(path, 'if "HPL ERROR" in raw:', 'if "HPL ERROR" in raw or "HPL FAILED" in raw:')
    try:
        jobs = planned(flow)
        assert measured(jobs) == Counter()
        assert collected(jobs) == Counter({"linpack": 2, "randomaccess": 2})
        run(flow)               # and it really re-collects (the parser still parses)
        assert "Nothing to be done" in run(flow, "-n").stdout
    finally:
        path.write_text(old)
    run(flow)                   # back to the original parser


def test_a_new_image_package_version_re_measures_everything(flow):
    manifest = flow["wd"] / "results" / "provision" / "image.json"
    original = manifest.read_text()
    m = json.loads(original)
    m["content_key"] = "rebuilt0newer"          # what a rebuild with a newer package writes
    manifest.write_text(json.dumps(m))
    try:
        assert sum(measured(planned(flow)).values()) == len(WORKLOADS)
    finally:
        manifest.write_text(original)


def test_changing_the_lxc_subnet_re_measures_nothing_that_does_not_use_it(flow, tmp_path):
    """lxc_host uses the host's network: its settings carry no subnet. (Moving state_dir is checked
    in test_cache_identity: no cell's params name it. Through Snakemake it rebuilds the image in the
    new place, and a dry run cannot see past that checkpoint, so it is not counted here.)"""
    subnet = tmp_path / "subnet.yaml"
    subnet.write_text("network: {lxc_subnet: 10.213.99.0/24}\n")
    assert measured(planned(flow, configs=[subnet])) == Counter()


def test_a_changed_host_stops_the_run_with_one_line(flow):
    other = {"ISOBENCH_HOST_FACTS": json.dumps({"kernel": "9.9.9-test", "cores": 96})}
    jobs = planned(flow, env=other)             # the dry run says why: every round's host param
    assert sum(measured(jobs).values()) == len(WORKLOADS)
    before = {p: p.stat().st_mtime_ns for p in flow["wd"].glob("results/cells/*/*/*.parquet")}
    proc = run(flow, env=other, check=False)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("isobench: this host differs")]
    assert proc.returncode != 0 and len(lines) == 1, proc.stderr[-2000:]
    assert "kernel" in lines[0] and "9.9.9-test" in lines[0] and "host_change=remeasure" in lines[0]
    assert {p: p.stat().st_mtime_ns for p in before} == before      # nothing measured
