"""config/paper.yaml, the whole paper in one command (issue #15): it validates as Snakemake merges
it over config/config.yaml, every table and figure of the paper has its workloads and environments,
each workload runs on exactly the environments its figure compares (run.environments_for), its
sizes follow the rules it states, and tests/configs/paper_tiny.yaml (the same matrix at tiny sizes)
plans exactly those pairs and runs end to end."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from snakemake.utils import update_config

from isobench import config as configmod
from isobench import paper as paperlib
from isobench.pipeline import Plan

from conftest import ROOT

PAPER = ROOT / "config" / "paper.yaml"
TINY = ROOT / "tests" / "configs" / "paper_tiny.yaml"

#: every table and figure of the paper -> our workloads that measure it (and the environments it
#: compares, by the paper's configuration ids in report/paper_results.yaml)
FIGURES = {
    "Table I: PXZ": (["pxz"], ["docker", "kvm_untuned", "kvm_tuned"]),
    "Table I: Linpack": (["linpack"], ["docker", "kvm_untuned", "kvm_tuned"]),
    "Table I: STREAM": (["stream"], ["docker", "kvm_untuned"]),
    "Table I: RandomAccess": (["randomaccess"], ["docker", "kvm_untuned"]),
    "nuttcp bandwidth (and Fig. 3, its CPU cost)": (["nuttcp"], ["docker_nat", "kvm"]),
    "netperf TCP_RR / UDP_RR latency": (["netperf_rr"], ["docker_nat", "kvm"]),
    "fio sequential read and write": (["fio_seq_read", "fio_seq_write"], ["docker_volume", "kvm"]),
    "fio random IOPS (read, write, mixed)": (["fio_randread_16x8", "fio_randwrite_16x8", "fio_randrw_32x8",
                                              "fio_randwrite_16"], ["docker_volume", "kvm"]),
    "Fig. 7: fio random read latency CDF": (["fio_randread_16"], ["docker_volume", "kvm"]),
    "Redis throughput and latency": (["redis"], ["docker_host", "docker_nat", "kvm"]),
    "MySQL throughput and latency": (["mysql"], ["docker_host_volume", "docker_nat_volume", "docker_nat_aufs",
                                                 "kvm"]),
}
#: the environments each workload runs on: native and the A/A native_aa everywhere, and the
#: environments of the paper configurations its figure compares (FIGURES), by the paper's pairs
TABLE_I = ["native", "native_aa", "lxc_host_volume", "kvm", "kvm_tuned"]
NETWORK = ["native", "native_aa", "lxc_host_volume", "lxc_nat_volume", "kvm", "kvm_tuned"]
PAIRS = {**dict.fromkeys(["pxz", "linpack", "stream", "randomaccess"], TABLE_I),
         **dict.fromkeys(["nuttcp", "netperf_rr", "redis"], NETWORK),
         **dict.fromkeys(["fio_seq_write", "fio_seq_read", "fio_randread_16", "fio_randread_16x8", "fio_randwrite_16",
                          "fio_randwrite_16x8", "fio_randrw_32x8"], TABLE_I),
         "mysql": ["native", "native_aa", "lxc_host_volume", "lxc_nat_volume", "lxc_nat_rootfs", "kvm", "kvm_tuned"]}
#: our workload -> the report/paper_results.yaml entry its figures are compared with
PAPER_ENTRY = {"pxz": "pxz", "linpack": "linpack", "stream": "stream", "randomaccess": "randomaccess",
               "nuttcp": "nuttcp", "netperf_rr": "netperf_rr", "fio_seq_read": "fio_seq_read",
               "fio_seq_write": "fio_seq_write", "fio_randread_16": "fio_randread_16x1",
               "fio_randread_16x8": "fio_randread_16x8", "fio_randwrite_16x8": "fio_randwrite_16x8",
               "fio_randrw_32x8": "fio_randrw_32x8", "redis": "redis", "mysql": "mysql"}
#: the metric each entry is looked up by (any metric the entry names)
ENTRY_METRIC = {"pxz": "throughput", "linpack": "gflops", "stream": "triad", "randomaccess": "gups",
                "nuttcp": "to_env", "netperf_rr": "tcp_mean", "fio_seq_read": "read_bw", "fio_seq_write": "write_bw",
                "fio_randread_16x1": "read_lat_p99", "fio_randread_16x8": "read_iops",
                "fio_randwrite_16x8": "write_iops", "fio_randrw_32x8": "total_iops", "redis": "set_rps",
                "mysql": "read_only_tps"}


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def snakemake_config(*overlays: Path) -> dict:
    """config/config.yaml with the overlays merged as `--configfile` merges them (update_config)."""
    raw = _yaml(ROOT / "config" / "config.yaml")
    for path in overlays:
        update_config(raw, _yaml(path))
    return raw


@pytest.fixture(scope="module")
def cfg() -> configmod.Config:
    return configmod.load(snakemake_config(PAPER))


@pytest.fixture(scope="module")
def paper() -> paperlib.Paper:
    return paperlib.load()


# -- paper.yaml validates, as Snakemake merges it and on its own ------------------------------------

def test_validates_as_merged_by_snakemake_and_as_a_top_level_overlay(cfg):
    flat = configmod.load(_yaml(ROOT / "config" / "config.yaml") | _yaml(PAPER))   # the check
    assert flat.run_environments == cfg.run_environments and flat.run_workloads == cfg.run_workloads
    assert {w: flat.workloads[w] for w in flat.run_workloads} == {w: cfg.workloads[w] for w in cfg.run_workloads}
    assert {e: flat.environments[e] for e in flat.run_environments} == {
        e: cfg.environments[e] for e in cfg.run_environments}
    # the default matrix stays defined underneath but is not run
    assert "fio_randread" in cfg.workloads and "fio_randread" not in cfg.run_workloads


def test_with_tcg_overlay_both_kvm_environments_run_emulated():
    cfg = configmod.load(snakemake_config(PAPER, ROOT / "config" / "tcg.yaml"))
    assert cfg.environments["kvm"]["accel"] == cfg.environments["kvm_tuned"]["accel"] == "tcg"
    assert cfg.environments["kvm"]["tuning"] == "untuned" and cfg.environments["kvm_tuned"]["tuning"] == "tuned"


def test_kvm_is_asked_for_only_where_the_host_has_it(cfg):
    for env in ("kvm", "kvm_tuned"):
        assert cfg.environments[env]["accel"] == "auto"
        avail = cfg.availability(env)
        assert avail.available or not avail.required        # skipped with its reason here, never failing


# -- every table and figure of the paper --------------------------------------------------------------

def test_every_figure_has_its_workloads_and_every_workload_a_figure(cfg):
    named = [w for ws, _ in FIGURES.values() for w in ws]
    assert len(named) == len(set(named))
    assert set(named) == set(cfg.run_workloads)


def test_every_paper_result_is_measured(cfg, paper):
    """Every entry of report/paper_results.yaml is what one of our workloads is compared with."""
    assert set(PAPER_ENTRY.values()) == {e.id for e in paper.entries}
    for wl, entry in PAPER_ENTRY.items():
        meta = {"kind": cfg.workloads[wl]["kind"], "params": cfg.workloads[wl]}
        found = paperlib.find_metric(paper, meta, ENTRY_METRIC[entry])
        assert found.entry is not None and found.entry.id == entry, (wl, found.note)


def test_every_paper_configuration_has_an_environment(cfg, paper):
    wanted = {c for _, configs in FIGURES.values() for c in configs}
    assert wanted | {"native"} == set(paper.configurations)
    for figure, (_, configs) in FIGURES.items():
        for conf in configs:
            hits = [e for e in cfg.run_environments
                    if paperlib.config_for(paper, configs, _manifest(cfg, e))[0] == conf]
            assert hits, f"{figure}: no environment stands for {conf}"


def test_each_workload_runs_on_exactly_the_paper_pairs(cfg):
    assert {w: list(cfg.environments_of(w)) for w in cfg.run_workloads} == PAIRS
    assert sum(map(len, PAIRS.values())) == 80                  # per round, with KVM (105 as a product)


def test_each_figures_configurations_are_among_its_workloads_environments(cfg, paper):
    """The pairs cover the figure: every configuration it compares stands for one of the
    environments of each of its workloads."""
    for figure, (workloads, configs) in FIGURES.items():
        for wl in workloads:
            found = {paperlib.config_for(paper, configs, _manifest(cfg, e))[0] for e in cfg.environments_of(wl)}
            assert set(configs) <= found, (figure, wl, set(configs) - found)


def _manifest(cfg: configmod.Config, env: str) -> dict:
    spec = dict(cfg.environments[env])
    return {"driver": spec.pop("driver"), "settings": spec}


# -- the sizes follow the rules paper.yaml states ------------------------------------------------------

def test_sizes_follow_the_stated_rules(cfg):
    cpus, mem = cfg.limits.cpus, cfg.limits.memory_mib
    w = cfg.workloads
    assert w["pxz"]["threads"] == w["stream"]["threads"] == w["linpack"]["processes"] == cpus
    assert w["randomaccess"]["processes"] == cpus
    n, nb = w["linpack"]["n"], w["linpack"]["nb"]
    assert n % nb == 0 and n * n * 8 <= 0.063 * mem * 2**20 < (n + nb) ** 2 * 8
    assert 3 * w["stream"]["array_mib"] == pytest.approx(0.144 * mem, rel=0.01)
    threads = sorted({max(1, round(t * cpus / 32)) for t in range(10, 291, 20)})
    assert w["mysql"]["threads"] == threads and w["mysql"]["seconds"] == 60
    assert w["mysql"]["tests"] == ["oltp_read_only"] and w["mysql"]["table_size"] == 2_000_000
    data_mib = w["mysql"]["table_size"] * 250 / 2**20
    assert 1.2 * data_mib <= w["mysql"]["buffer_pool_mib"] <= 0.25 * mem
    assert w["redis"]["connections"] == [1, 2, 3, 4, 5, 10, 15, 20, 30, 40, 50, 60, 80, 100, 120]
    assert w["redis"]["requests"] == 500_000
    fio = [x for x in cfg.run_workloads if w[x]["kind"] == "fio"]
    assert len(fio) == 7
    for x in fio:
        assert w[x]["size_mib"] == max(16384, 2 * mem) and w[x]["runtime_s"] == 60, x
    jobs = {(w[x]["rw"], w[x]["bs"], w[x]["iodepth"], w[x]["numjobs"]) for x in fio}
    assert jobs == {("write", "1m", 16, 1), ("read", "1m", 2, 1), ("randread", "4k", 16, 1), ("randread", "4k", 16, 8),
                    ("randwrite", "4k", 16, 1), ("randwrite", "4k", 16, 8), ("randrw", "4k", 32, 8)}
    assert w["fio_randrw_32x8"]["rwmixread"] == 70 and w["fio_randread_16"]["latency_percentiles"]
    assert w["netperf_rr"]["seconds"] == 60 and w["nuttcp"]["seconds"] == 10


# -- paper_tiny.yaml is paper.yaml at tiny sizes ------------------------------------------------------

#: what a workload is (its access pattern, its tests), as opposed to its size
SHAPE = {"fio": ("rw", "bs", "iodepth", "numjobs", "rwmixread", "latency_percentiles"),
         "mysql": ("tests",), "redis": ("tests", "value_bytes", "keyspace"),
         "net_latency": ("protocols", "request_bytes", "response_bytes"), "compression": ("level",)}


def test_tiny_is_the_same_matrix(cfg):
    tiny = configmod.load(snakemake_config(TINY))
    assert tiny.run_environments == cfg.run_environments and tiny.run_workloads == cfg.run_workloads
    assert tiny.run_environments_for == cfg.run_environments_for
    assert _yaml(TINY)["run"]["environments_for"] == _yaml(PAPER)["run"]["environments_for"]
    for env in cfg.run_environments:
        want = dict(cfg.environments[env], **({"accel": "tcg"} if cfg.environments[env]["driver"] == "kvm" else {}))
        assert tiny.environments[env] == want, env
    for wl in cfg.run_workloads:
        kind = cfg.workloads[wl]["kind"]
        assert tiny.workloads[wl]["kind"] == kind
        for key in SHAPE.get(kind, ()):
            assert tiny.workloads[wl][key] == cfg.workloads[wl][key], (wl, key)
    assert tiny.rounds["min"] == tiny.rounds["max"] == 1


# -- paper_short.yaml: paper.yaml's matrix and pairs at short sizes, one command -------------------------

def test_short_keeps_the_paper_pairs_and_shortens_every_fio_job(cfg):
    short = configmod.load(snakemake_config(PAPER, ROOT / "config" / "paper_short.yaml"))
    assert short.run_workloads == cfg.run_workloads and short.run_environments_for == cfg.run_environments_for
    fio = [w for w in short.run_workloads if short.workloads[w]["kind"] == "fio"]
    assert len(fio) == 7 and all(short.workloads[w]["size_mib"] <= 1024 and short.workloads[w]["runtime_s"] <= 5
                                 for w in fio)


# -- end to end: the whole paper matrix at tiny sizes, one round ---------------------------------------

SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]
LOCK_BUSY = "another run is measuring on this host"


def test_tiny_dry_run_plans_exactly_the_paper_pairs(tmp_path):
    """`snakemake -n all` of paper_tiny.yaml (a dry run: no host lock, nothing run) plans one
    run_round job per workload of round 1, each with its own priority, and one collect_cell job per
    planned pair. The image checkpoint's outputs are written first, as if provisioned: the rounds
    are planned once the image is known."""
    prov = tmp_path / "results" / "provision"
    prov.mkdir(parents=True)
    (prov / "image.json").write_text(json.dumps({"key": "fake", "content_key": "fake"}))
    (prov / "host.json").write_text("{}")
    cmd = [*SNAKEMAKE, "-d", str(tmp_path), "-n", "--cores", "1", "--configfile", str(TINY), "--", "all"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = re.findall(r"^rule run_round:\n((?:    .*\n)+)", proc.stdout, re.M)
    rounds = [re.search(r"wildcards: workload=(\w+), round=(\d+)", j).groups() for j in jobs]
    collects = re.findall(r"^rule collect_cell:\n((?:    .*\n)+)", proc.stdout, re.M)
    cells = [re.search(r"wildcards: env=(\w+), workload=(\w+), round=(\d+)", j).groups() for j in collects]
    plan = Plan(configmod.load(snakemake_config(TINY)))
    assert sorted(rounds) == sorted((w, "1") for w in plan.workloads)
    want = sorted((e, w, "1") for w in plan.workloads for e in plan.environments_of(w))
    assert sorted(cells) == want
    if plan.available_environments == list(plan.config.run_environments):   # tcg: all seven here
        assert len(cells) == 80
    prios = [int(re.search(r"priority: (\d+)", j)[1]) for j in jobs]
    assert len(set(prios)) == len(prios)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """`snakemake --cores 1 all --configfile tests/configs/paper_tiny.yaml` in a temporary directory;
    while another run holds the host lock, wait for it (up to 10 minutes)."""
    wd = tmp_path_factory.mktemp("paper_tiny")
    cmd = [*SNAKEMAKE, "-d", str(wd), "--cores", "1", "--configfile", str(TINY), "--", "all"]
    deadline = time.monotonic() + 600
    while True:
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=5400)
        if proc.returncode == 0 or LOCK_BUSY not in proc.stderr or time.monotonic() > deadline:
            break
        time.sleep(60)
    if proc.returncode != 0:
        # the failed jobs' own logs say why (the temporary directory may be gone when this is read)
        logs = [f"--- {p.relative_to(wd)}\n{p.read_text(errors='replace')[-3000:]}"
                for p in sorted(wd.glob("results/logs/**/*.log"))
                if any(w in p.read_text(errors="replace") for w in ("Traceback", "ERROR"))]
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stderr[-3000:]}\n" + "\n".join(logs[:5]))
    print(f"paper_tiny: snakemake all took {time.monotonic() - t0:.0f} s")
    return wd, proc


@pytest.mark.e2e
def test_tiny_paper_run_measures_every_workload_on_its_environments(tiny_run):
    wd, proc = tiny_run
    cfg = configmod.load(snakemake_config(TINY))
    found = {(p.parts[-3], p.parts[-2]) for p in wd.glob("results/cells/*/*/round-1.parquet")}
    assert found == {(e, w) for w in cfg.run_workloads for e in cfg.environments_of(w)}
    df = pd.concat(pd.read_parquet(p) for p in wd.glob("results/cells/*/*/round-1.parquet"))
    measured = df[~df.warmup]
    assert (measured.value > 0).all()
    kvm = df[df.driver == "kvm"]
    assert set(kvm.env) == {"kvm", "kvm_tuned"} and kvm.emulated.all() and kvm.accel.eq("tcg").all()
    # the paper's shapes: the latency CDF, the sweeps
    cdf = set(measured[measured.workload == "fio_randread_16"].metric)
    assert {"read_lat_p1", "read_lat_p50", "read_lat_p90", "read_lat_p99.9"} <= cdf
    assert set(measured[measured.workload == "fio_randrw_32x8"].metric) >= {"read_iops", "write_iops", "total_iops"}
    assert set(measured[measured.workload == "mysql"].point) == {"threads=1", "threads=2"}
    assert set(measured[measured.workload == "redis"].point) == {"connections=1", "connections=4"}
    # the sweeps' CPU cost is timed per point; workloads without points carry none
    timed = measured.kind.isin(["mysql", "redis"])
    assert (measured[timed].point_seconds > 0).all() and (measured[timed].point_cpu_busy_s > 0).all()
    assert measured[~timed].point_seconds.isna().all()
    assert set(measured[measured.kind == "mysql"].point_subject) == {"read_only"}
    lxc_points = measured[timed & (measured.driver == "lxc")]
    assert (lxc_points.point_env_cpu_s > 0).all() and (lxc_points.point_seconds < lxc_points.cell_seconds).all()
    cpu = pd.read_csv(wd / "results" / "aggregate" / "cpu_cost.csv", keep_default_na=False)
    assert {"threads=1", "threads=2"} <= set(cpu[cpu.workload == "mysql"].point)
    summary = pd.read_csv(wd / "results" / "aggregate" / "summary.csv")
    assert set(summary.env) == set(cfg.run_environments) and set(summary.workload) == set(cfg.run_workloads)
    assert set(zip(summary.env, summary.workload)) == found
    missing = pd.read_csv(wd / "results" / "aggregate" / "missing.csv", keep_default_na=False)
    assert not (missing.scope == "cell").any(), missing      # the pairs not planned are not missing
    html = (wd / "results" / "report" / "report.html").read_text()
    for w in cfg.run_workloads:
        assert w in html, w
    assert "results/report/report.html" in proc.stderr
    settings = {e: json.loads(s) for e, s in df.groupby("env").settings.first().items()}
    assert (settings["lxc_nat_rootfs"]["net"], settings["lxc_nat_rootfs"]["storage"]) == ("nat", "rootfs")
    assert (settings["lxc_nat_volume"]["net"], settings["lxc_nat_volume"]["storage"]) == ("nat", "volume")
    assert (settings["lxc_host_volume"]["net"], settings["lxc_host_volume"]["storage"]) == ("host", "volume")
