"""The real pipeline, end to end, on native and every LXC variant with tiny sizes.

Runs `snakemake --cores 2 all` in a temporary working directory (the image is cached in the state
dir, so only the first run ever builds it), then checks the Parquet cells, the aggregate and the
report, that a second run does nothing, and that a changed fio parameter reruns only fio cells.
"""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from isobench.drivers.kvm import daemon as libvirtd
from isobench.schema import SCHEMA

from conftest import ROOT

pytestmark = pytest.mark.e2e

SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]
TINY = ROOT / "tests" / "configs" / "tiny.yaml"
ENVS = ["native", "native_aa", "lxc_bridge", "lxc_nat", "lxc_host", "lxc_volume", "kvm"]
LXC = [e for e in ENVS if e.startswith("lxc")]
WORKLOADS = ["compression", "fio_randread"]


def run_matrix(envs: list[str], workloads: list[str]) -> dict:
    """Every workload on every one of ``envs`` (the default config's lists name fewer per workload)."""
    return {"environments": envs, "workloads": workloads, "environments_for": {w: envs for w in workloads}}


def snakemake(workdir: Path, *flags: str, configs=(TINY,), check=True, envs=ENVS,
              workloads=WORKLOADS) -> subprocess.CompletedProcess:
    # --configfile and --config take several values: targets go after "--"
    cmd = [*SNAKEMAKE, "-d", str(workdir), "--cores", "2", *flags, "--configfile", *map(str, configs),
           "--config", f"run={json.dumps(run_matrix(envs, workloads))}", "--", "all"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1500)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    wd = tmp_path_factory.mktemp("pipeline")
    firewall_was_clean = not libvirtd.libvirt_chains() and not libvirtd.answers()
    proc = snakemake(wd)
    return wd, proc, firewall_was_clean


def cells(wd: Path) -> list[Path]:
    return sorted(wd.glob("results/cells/*/*/round-*.parquet"))


def test_every_env_and_workload_has_a_cell(run):
    wd, *_ = run
    found = {(p.parts[-3], p.parts[-2]) for p in cells(wd)}
    assert found == {(e, w) for e in ENVS for w in WORKLOADS}


def test_cells_follow_the_schema_and_hold_plausible_numbers(run):
    wd, *_ = run
    for path in cells(wd):
        table = pq.read_table(path)
        assert table.schema.equals(SCHEMA, check_metadata=False), path
        df = table.to_pandas()
        measured = df[~df.warmup]
        assert set(measured.iteration) == {2, 3}                # warmup_iterations: 1, iterations: 2
        assert set(df[df.warmup].iteration) == {1}
        assert (measured.value > 0).all()
        if df.driver.iloc[0] == "kvm":          # emulated here, and labelled so on every row
            assert df.accel.eq("tcg").all() and df.emulated.all()
        else:
            assert df.accel.eq("none").all() and not df.emulated.any()
        assert df.tool_version.str.match(r"^(xz \(XZ Utils\)|fio-)").all()
        settings = json.loads(df.settings.iloc[0])
        assert settings["driver"] == df.driver.iloc[0]


def test_lxc_variants_record_their_settings(run):
    wd, *_ = run
    df = pd.concat(pd.read_parquet(p) for p in cells(wd))
    by_env = {e: json.loads(s) for e, s in df.groupby("env").settings.first().items()}
    assert by_env["lxc_nat"]["net"] == "nat" and by_env["lxc_volume"]["storage"] == "volume"
    assert by_env["lxc_bridge"]["cgroup_layout"] in ("v1", "v2")
    assert by_env["kvm"]["accel"] == "tcg" and by_env["kvm"]["emulated"] is True


def test_warmup_saw_the_configured_limits(run):
    wd, *_ = run
    for env in [e for e in ENVS if not e.startswith("native")]:
        rec = json.loads((wd / "results" / "warmup" / f"{env}.json").read_text())
        assert rec["inside"]["nproc"] == 2
        if env in LXC:
            assert rec["inside"]["cgroup_memory"] == str(1024 * 1024 * 1024)
        else:                                   # the guest kernel keeps some memory for itself
            assert 0.85 * 1024 <= rec["inside"]["mem_mib"] <= 1024


def test_raw_output_is_kept(run):
    wd, *_ = run
    raw = wd / "results" / "raw" / "compression" / "round-1" / "native"
    assert (raw / "iter-01.warmup.out").read_text().startswith("$ s=$(date")
    meta = json.loads((raw / "cell.json").read_text())
    assert [i["warmup"] for i in meta["iterations"]] == [True, False, False]


def test_aggregate_and_report(run):
    wd, proc, _ = run
    summary = pd.read_csv(wd / "results" / "aggregate" / "summary.csv")
    assert set(summary.env) == set(ENVS)
    html = (wd / "results" / "report" / "report.html").read_text()
    for w in WORKLOADS:
        assert f'id="{w}"' in html or w in html
    assert "emulated" in html.lower()
    assert "results/report/report.html" in proc.stderr      # the run ends with the report's path


def test_snakemake_report_collects_the_report_and_figures(run):
    wd, *_ = run
    out = wd / "snakemake-report.html"
    snakemake(wd, "--report", str(out))
    html = out.read_text()
    for needle in ("Report", "Figures", "report.html", "compression.png"):
        assert needle in html, needle


def test_results_are_not_world_writable(run):
    wd, *_ = run
    files = list((wd / "results").rglob("*"))
    assert len(files) > 50
    bad = [p for p in files if p.stat().st_mode & stat.S_IWOTH]
    assert not bad, bad[:5]


def test_second_run_does_nothing(run):
    wd, *_ = run
    proc = snakemake(wd, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_changed_fio_parameter_reruns_only_fio_cells(run):
    wd, *_ = run
    before = {p: p.stat().st_mtime_ns for p in cells(wd)}
    warm_before = {p: p.stat().st_mtime_ns for p in (wd / "results" / "warmup").glob("*.json")}
    snakemake(wd, configs=(TINY, ROOT / "tests" / "configs" / "tiny_fio_changed.yaml"))
    changed = {p.parts[-2] for p in cells(wd) if p.stat().st_mtime_ns != before[p]}
    assert changed == {"fio_randread"}
    assert all(p.stat().st_mtime_ns != before[p] for p in cells(wd) if p.parts[-2] == "fio_randread")
    assert warm_before == {p: p.stat().st_mtime_ns for p in warm_before}
    depth = json.loads((wd / "results/raw/fio_randread/round-1/native/cell.json").read_text())["params"]["iodepth"]
    assert depth == 4


def test_adding_rounds_measures_only_the_new_rounds(run):
    """A second round (a raised rounds.min) measures round 2 on each environment (one job per
    workload) and nothing else: every round-1 cell and raw directory stays as it was. (The same
    environments: a round's environments are part of its identity, measured together.)"""
    wd, *_ = run
    envs, wls = ENVS, WORKLOADS
    before = {p: p.stat().st_mtime_ns for p in cells(wd)}
    raw_before = {p: p.stat().st_mtime_ns for p in wd.glob("results/raw/*/round-1/*/cell.json")}
    # the config as the previous test left it (fio changed), plus a second round
    configs = (TINY, ROOT / "tests" / "configs" / "tiny_fio_changed.yaml",
               ROOT / "tests" / "configs" / "tiny_rounds2.yaml")
    # the dry run re-decides batch 0 (a checkpoint: round 2 joins the DAG after it) and measures nothing
    dry = snakemake(wd, "-n", configs=configs, envs=envs, workloads=wls)
    assert not re.findall(r"output: (results/raw/\S+)", dry.stdout), dry.stdout[-3000:]
    proc = snakemake(wd, configs=configs, envs=envs, workloads=wls)
    measured = re.findall(r"^(?:local)?rule run_round:\n(?:    .*\n)*?    output: (\S+)", proc.stdout + proc.stderr,
                          re.M)
    assert sorted(measured) == sorted(f"results/raw/{w}/round-2" for w in wls), (proc.stderr[-3000:])
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert {p: p.stat().st_mtime_ns for p in raw_before} == raw_before
    assert sorted(p.parts[-3] for p in wd.glob("results/cells/*/compression/round-2.parquet")) == sorted(envs)
    decision = json.loads((wd / "results/rounds/compression/final.json").read_text())
    assert decision["rounds"] == 2 and decision["done"] and decision["stop"] == "max rounds"
    assert (wd / "results/aggregate/precision.csv").exists()


def test_no_project_objects_left_on_the_host(run):
    assert not Path("/sys/class/net/isobench0").exists()
    lxc = Path("/var/lib/isobench/lxc")
    assert not any(lxc.glob("isobench-*")) if lxc.exists() else True
    mounts = Path("/proc/self/mountinfo").read_text()
    assert not re.search(r"/var/lib/isobench/instances/isobench-", mounts)
    domains = subprocess.run(["virsh", "-c", "qemu:///system", "list", "--all", "--name"], capture_output=True,
                             text=True).stdout.split()
    assert not [d for d in domains if d.startswith("isobench-")]
    nets = subprocess.run(["virsh", "-c", "qemu:///system", "net-list", "--all", "--name"], capture_output=True,
                          text=True).stdout.split()
    assert "isobench-net" not in nets
    qemus = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "guest=isobench-" not in qemus
    rules = "".join(subprocess.run(["iptables", "-t", t, "-S"], capture_output=True, text=True).stdout
                    for t in ("filter", "nat", "mangle"))
    assert "ISOBENCH" not in rules and "isobench" not in rules
    if run[2]:      # the pipeline started libvirtd on a clean host: libvirt's chains go too
        assert "LIBVIRT_" not in rules
