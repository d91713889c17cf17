"""The paper's results as data, the environment/workload mapping and the verdicts."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from isobench import paper  # noqa: E402
from test_stats import manifest, run  # noqa: E402,F401  (run is a fixture)


@pytest.fixture(scope="module")
def data() -> paper.Paper:
    return paper.load()


def test_every_figure_has_source_confidence_and_ratio(data):
    figures = data.figures()
    assert len(figures) > 100
    for f in figures:
        assert f.source.strip(), f
        assert f.confidence in paper.TAGS, f
        assert math.isfinite(f.ratio) and f.ratio > 0, f
        if f.config == paper.BASELINE_CONFIG:
            assert f.ratio == 1.0


def test_known_numbers_transcribed(data):
    """Spot checks against paper.md: Table I, fio, Redis, MySQL."""
    def fig(entry, metric, config, point=""):
        e = next(e for e in data.entries if e.id == entry)
        return e.metrics[metric].points[point][config]
    assert fig("linpack", "gflops", "kvm_tuned").ratio == pytest.approx(284.2 / 290.8)
    assert fig("linpack", "gflops", "kvm_untuned").confidence == "R"  # the unverified -17 %
    assert fig("fio_randread_16x8", "read_iops", "kvm").ratio == pytest.approx(0.549, abs=0.001)
    assert fig("redis", "set_rps", "docker_nat", "connections=10").ratio == pytest.approx(70.3 / 106, abs=1e-3)
    assert fig("mysql", "tps", "kvm", "threads=90").ratio == pytest.approx(4660 / 12428)
    assert fig("netperf_rr", "tcp_mean", "docker_nat").ratio == 2.0


def test_load_rejects_a_figure_without_source(tmp_path):
    doc = yaml.safe_load(paper.DEFAULT_PATH.read_text())
    doc["workloads"][0].pop("source")
    bad = tmp_path / "p.yaml"
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(ValueError, match="no source"):
        paper.load(bad)


def test_load_rejects_unknown_confidence(tmp_path):
    doc = yaml.safe_load(paper.DEFAULT_PATH.read_text())
    doc["workloads"][0]["confidence"] = "guess"
    bad = tmp_path / "p.yaml"
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(ValueError, match="confidence"):
        paper.load(bad)


@pytest.mark.parametrize("env,candidates,expected", [
    ("lxc_nat", ["native", "docker_host", "docker_nat", "kvm"], "docker_nat"),
    ("lxc_bridge", ["native", "docker_host", "docker_nat", "kvm"], None),        # bridge: no counterpart
    ("lxc_bridge", ["native", "docker", "kvm_untuned", "kvm_tuned"], "docker"),  # CPU: network irrelevant
    ("lxc_volume", ["native", "docker_volume", "kvm"], "docker_volume"),
    ("lxc_nat", ["native", "docker_volume", "kvm"], None),                      # fio on rootfs: not tested
    ("lxc_nat", ["native", "docker_host_volume", "docker_nat_volume", "docker_nat_aufs", "kvm"], "docker_nat_aufs"),
    ("kvm", ["native", "docker", "kvm_untuned", "kvm_tuned"], "kvm_tuned"),
    ("kvm", ["native", "docker_nat", "kvm"], "kvm"),
    ("native_again", ["native", "docker", "kvm_tuned"], None),                   # A/A, not a paper config
])
def test_environment_mapping(data, env, candidates, expected):
    config, why = paper.config_for(data, candidates, manifest(env))
    assert config == expected
    assert bool(why) == (expected is None)
    if env == "lxc_bridge" and expected is None:
        assert "no counterpart" in why and "net=bridge" in why


def test_kvm_untuned_mapping(data):
    m = {"driver": "kvm", "settings": {"tuning": "untuned"}}
    assert paper.config_for(data, ["native", "docker", "kvm_untuned", "kvm_tuned"], m)[0] == "kvm_untuned"
    config, why = paper.config_for(data, ["native", "docker", "kvm_untuned", "kvm_tuned"], {"driver": "kvm"})
    assert config is None and "tuning=unset" in why


def test_workload_mapping_by_kind_and_params(data):
    fio = {"kind": "fio", "params": {"rw": "randread", "bs": "4K", "iodepth": 16, "numjobs": 1}}
    lat = paper.find_metric(data, fio, "read_lat_p50")
    assert lat.entry.id == "fio_randread_16x1" and lat.note == ""          # exact job
    iops = paper.find_metric(data, fio, "read_iops")
    assert iops.entry.id == "fio_randread_16x8" and "numjobs=8" in iops.note  # nearest job, noted
    assert "metric not in the paper" in paper.find_metric(data, fio, "read_bw").note
    assert "workload not in the paper" in paper.find_metric(data, {"kind": "sleep", "params": {}}, "x").note
    # the workload modules' own metric names (tests/fixtures: net_latency, net_bandwidth, mysql)
    udp = paper.find_metric(data, {"kind": "net_latency", "params": {}}, "udp_mean")
    assert udp.entry.id == "netperf_rr" and udp.spec.name == "udp_mean"
    tcp = paper.find_metric(data, {"kind": "net_latency", "params": {}}, "rtt")  # alias of tcp_mean
    assert tcp.spec.name == "tcp_mean"
    assert paper.find_metric(data, {"kind": "net_bandwidth", "params": {}}, "to_env").entry.id == "nuttcp"
    assert paper.find_metric(data, {"kind": "mysql", "params": {}}, "read_only_tps").spec.name == "tps"
    stream = paper.find_metric(data, {"kind": "stream", "params": {}}, "triad")
    assert stream.spec.name == "triad"


@pytest.mark.parametrize("ours,theirs,expected", [
    (0.80, 0.82, paper.AGREES),     # both below
    (0.98, 1.00, paper.AGREES),     # both within ±5 %
    (1.04, 0.96, paper.AGREES),     # both within the band, on opposite sides of 1
    (0.90, 0.965, paper.DIFFERS),   # ours below the band, theirs inside
    (1.20, 0.80, paper.DIFFERS),    # opposite sides
    (0.95, 1.0, paper.AGREES),      # the band is inclusive
])
def test_verdict_rule(ours, theirs, expected):
    assert paper.verdict(ours, theirs, 0.05) == expected


def test_rule_is_written_down():
    assert "±5%" in paper.VERDICT_RULE and paper.AGREES in paper.VERDICT_RULE
    assert "±5 %" in paper.__doc__ or "0.05" in paper.__doc__


def test_compare_on_synthetic_run(run, data):
    import json
    workloads = json.loads(Path(run["workloads"]).read_text())
    manifests = {m["env"]: m for m in (json.loads(Path(p).read_text()) for p in run["manifests"])}
    c = paper.compare(run["overhead"], manifests, workloads, data)
    assert len(c) == len(run["overhead"])

    def row(env, wl, metric, point=""):
        sel = c[(c.env == env) & (c.workload == wl) & (c.metric == metric) & (c.point == point)]
        assert len(sel) == 1
        return sel.iloc[0]

    # emulated: never compared with a KVM figure, no paper number beside it
    emu = c[c.env == "kvm_tcg"]
    assert (emu.verdict == paper.NOT_COMPARABLE).all() and (emu.reason == paper.EMULATED_REASON).all()
    assert emu.paper_ratio.isna().all() and (emu.paper_label == "").all()
    # 0.90 vs Docker's 0.965 (inside the band): differs; KVM 0.80 vs KVM-tuned 0.816: agrees
    assert row("lxc_bridge", "compression", "throughput").verdict == paper.DIFFERS
    k = row("kvm", "compression", "throughput")
    assert k.verdict == paper.AGREES and k.paper_config == "kvm_tuned" and k.confidence == "R"
    # a bridge container has no network counterpart; NAT does
    assert "no counterpart" in row("lxc_bridge", "redis", "set_rps", "connections=10").reason
    nat = row("lxc_nat", "redis", "set_rps", "connections=10")
    assert nat.paper_config == "docker_nat" and nat.verdict == paper.AGREES
    # a sweep point the paper did not measure is said so
    assert all(r.verdict in (paper.AGREES, paper.DIFFERS, paper.NOT_COMPARABLE) for r in c.itertuples())
    assert row("kvm", "fio_randread", "read_bw").reason.startswith("metric not in the paper")
    assert "A/A" in row("native_again", "compression", "throughput").reason


def test_point_not_in_paper(data):
    over = pd.DataFrame([{"env": "kvm", "driver": "kvm", "workload": "r", "metric": "set_rps",
                          "point": "connections=3", "ratio": 0.8, "ratio_ci_low": 0.7, "ratio_ci_high": 0.9,
                          "emulated": False, "comparable": True, "reason": "", "ci_note": ""}])
    c = paper.compare(over, {"kvm": manifest("kvm")}, {"r": {"kind": "redis", "params": {}}}, data)
    assert c.iloc[0].verdict == paper.NOT_COMPARABLE and "connections=3 not in the paper" in c.iloc[0].reason
