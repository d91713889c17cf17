"""fio: what its numbers mean, and the access patterns besides randread. The parser's contract
(real captured output, failed, truncated and foreign runs) is in test_workload_contract.py."""

from __future__ import annotations

import pytest

from isobench.errors import ParseError
from isobench.workloads.fio import Fio

import captured


@pytest.mark.parametrize("path", captured.good("fio"), ids=lambda p: p.name)
def test_randread_bandwidth_and_iops_describe_the_same_run(path):
    samples = {s.metric: s.value for s in Fio.parse(path.read_text(), {"rw": "randread"})}
    assert samples["read_bw"] == pytest.approx(samples["read_iops"] * 4096 / 1e6, rel=0.05)  # 4 KiB blocks


def test_mixed_yields_both_directions_and_total():
    samples = {s.metric: s.value for s in Fio.parse(captured.text("fio", "randrw-native.json"), {"rw": "randrw"})}
    assert set(samples) == {f"{d}_{m}" for d in ("read", "write") for m in ("iops", "bw", "lat_p50", "lat_p99")} | {
        "total_iops"}
    assert set(samples) <= set(Fio.METRICS)
    assert samples["total_iops"] == pytest.approx(samples["read_iops"] + samples["write_iops"])
    assert samples["read_iops"] > samples["write_iops"]     # rwmixread=70
    assert samples["read_lat_p50"] <= samples["read_lat_p99"] and samples["write_lat_p50"] <= samples["write_lat_p99"]


def test_sequential_write():
    samples = {s.metric for s in Fio.parse(captured.text("fio", "write-native.json"), {"rw": "write"})}
    assert samples == {"write_iops", "write_bw", "write_lat_p50", "write_lat_p99"}
    assert samples <= set(Fio.METRICS)


# -- the paper's job set (config/paper.yaml): sequential 1M, 8 jobs, the latency CDF of Figure 7 ------
# Captured like the others: the fio workload run by isobench.cell.run_cell on native and lxc_bridge
# (64 MiB file, 2 s, fio-3.33 of the image), iter-01.out saved unedited.

CDF = [f"read_lat_p{p:g}" for p in sorted((1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99, 99.5, 99.9))]


def _pct(metric: str) -> float:
    return float(metric.rsplit("_p", 1)[1])


@pytest.mark.parametrize("name", ["randread-cdf-native.json", "randread-cdf-lxc_bridge.json"])
def test_latency_percentiles_give_the_cdf(name):
    raw = captured.text("fio", name)
    params = {"rw": "randread", "latency_percentiles": True}
    samples = Fio.parse(raw, params)
    got = {s.metric: s.value for s in samples}
    assert set(got) == {"read_iops", "read_bw", *CDF}
    assert [s.metric for s in samples] == sorted(got, key=list(Fio.METRICS).index)   # declaration order
    assert all(s.point == "" for s in samples)
    cdf = [got[m] for m in sorted(CDF, key=_pct)]
    assert cdf == sorted(cdf) and cdf[0] > 0                # a distribution: non-decreasing in the percentile
    # the p50/p99 pair is what it is without the option
    plain = {s.metric: s.value for s in Fio.parse(raw, {"rw": "randread"})}
    assert set(plain) == {"read_iops", "read_bw", "read_lat_p50", "read_lat_p99"}
    assert all(got[m] == v for m, v in plain.items())


def test_latency_percentile_values_are_the_tools():
    got = {s.metric: s.value for s in Fio.parse(captured.text("fio", "randread-cdf-native.json"),
                                                 {"rw": "randread", "latency_percentiles": True})}
    # jobs[0].read.clat_ns.percentile "1.000000", "95.000000", "99.900000" / 1000
    assert got["read_lat_p1"] == 134.144 and got["read_lat_p95"] == 337.920 and got["read_lat_p99.9"] == 25559.040
    assert got["read_iops"] == 49910.544728


def test_a_missing_percentile_is_an_error():
    raw = captured.text("fio", "randread-cdf-native.json").replace('"99.500000" : ', '"99.600000" : ')
    with pytest.raises(ParseError, match="incomplete"):
        Fio.parse(raw, {"rw": "randread", "latency_percentiles": True})


def test_percentile_metrics_are_the_reports_latency_family():
    """The report draws ``*lat*_pNN`` metrics as percentile lines: every CDF metric reads as one."""
    from isobench.report.fmt import percentile_of
    for d in ("read", "write"):
        for m in [m for m in Fio.METRICS if m.startswith(f"{d}_lat_p")]:
            assert percentile_of(m) == (f"{d}_lat", _pct(m)), m
            assert Fio.METRICS[m].unit == "µs" and not Fio.METRICS[m].higher_is_better


def test_sequential_read_1m():
    samples = {s.metric: s.value for s in Fio.parse(captured.text("fio", "read-native.json"), {"rw": "read"})}
    assert set(samples) == {"read_iops", "read_bw", "read_lat_p50", "read_lat_p99"}
    assert samples["read_bw"] == pytest.approx(samples["read_iops"] * 1048576 / 1e6, rel=0.05)   # 1 MiB blocks


def test_eight_jobs_are_reported_as_one_group():
    """numjobs=8 with --group_reporting: one job entry, the IOPS of all eight."""
    raw = captured.text("fio", "randwrite-16x8-native.json")
    assert raw.count('"jobname"') == 1 and '"numjobs" : "8"' in raw
    samples = {s.metric: s.value for s in Fio.parse(raw, {"rw": "randwrite", "numjobs": 8})}
    assert set(samples) == {"write_iops", "write_bw", "write_lat_p50", "write_lat_p99"}
    assert samples["write_iops"] == 55145.544554


# -- commands: the default config's fio job is unchanged by the paper's options ------------------------
DEFAULT_ARGV = ["fio", "--output-format=json", "--name=fio_randread", "--filename=/data/fio.dat", "--rw=randread",
                "--bs=4k", "--iodepth=16", "--numjobs=1", "--size={size}M", "--runtime={runtime}", "--time_based",
                "--ioengine=libaio", "--direct=1", "--group_reporting", "--thread"]


@pytest.mark.parametrize("profile, size, runtime", [("quick", 256, 3), ("full", 16384, 60)])
def test_default_config_commands_are_unchanged(default_raw, profile, size, runtime):
    from isobench import config
    cfg = config.load({**default_raw, "profile": profile})
    wl = cfg.workload("fio_randread")
    assert wl.params["latency_percentiles"] is False
    assert wl.argv() == [a.format(size=size, runtime=runtime) for a in DEFAULT_ARGV]
    assert wl.describe() == f"fio rw=randread bs=4k iodepth=16 numjobs=1 size={size}MiB {runtime}s libaio direct"


def test_latency_percentiles_ask_fio_for_the_list():
    base = {k: v["default"] for k, v in Fio.PARAMS.items()}
    plain, cdf = Fio("f", base).argv(), Fio("f", {**base, "latency_percentiles": True}).argv()
    assert cdf == plain + ["--percentile_list=1:5:10:20:30:40:50:60:70:80:90:95:99:99.5:99.9"]
    mixed = Fio("f", {**base, "rw": "randrw", "iodepth": 32, "numjobs": 8}).argv()
    assert "--rwmixread=70" in mixed and "--numjobs=8" in mixed and "--iodepth=32" in mixed
