"""Parsers on real tool output captured from real runs (tests/fixtures), and on broken output."""

from __future__ import annotations

import pytest

from conftest import FIXTURES
from isobench.errors import ParseError
from isobench.workloads import KINDS

FIO = KINDS["fio"]
XZ = KINDS["compression"]
FIO_PARAMS = {"rw": "randread"}


@pytest.mark.parametrize("env", ["native", "lxc_bridge"])
def test_compression_parses_real_output(env):
    raw = (FIXTURES / "compression" / f"{env}.out").read_text()
    [s] = XZ.parse(raw, {})
    assert s.metric == "throughput" and s.point == ""
    assert 0.5 < s.value < 1000          # MB/s of xz -2 on one or two cores


def test_compression_throughput_is_bytes_over_time():
    raw = "isobench-xz exit=0 bytes=100000000 start_ns=1000000000 end_ns=3000000000\n"
    [s] = XZ.parse(raw, {})
    assert s.value == pytest.approx(50.0)


@pytest.mark.parametrize("raw, why", [
    ((FIXTURES / "compression" / "failed-native.out").read_text(), "xz exited with 1"),
    ("", "no result line"),
    ("isobench-xz exit=0 bytes=100 start_ns=5", "no result line"),
    ("isobench-xz exit=0 bytes=100 start_ns=5 end_ns=5", "impossible timing"),
])
def test_compression_rejects_failed_and_truncated_output(raw, why):
    with pytest.raises(ParseError, match=why):
        XZ.parse(raw, {})


@pytest.mark.parametrize("env", ["native", "lxc_bridge"])
def test_fio_randread_real_output(env):
    samples = {s.metric: s.value for s in FIO.parse((FIXTURES / "fio" / f"randread-{env}.json").read_text(), FIO_PARAMS)}
    assert set(samples) == {"read_iops", "read_bw", "read_lat_p50", "read_lat_p99"}
    assert samples["read_iops"] > 100
    assert samples["read_lat_p50"] <= samples["read_lat_p99"]
    # 4 KiB blocks: bandwidth and IOPS describe the same run
    assert samples["read_bw"] == pytest.approx(samples["read_iops"] * 4096 / 1e6, rel=0.05)


def test_fio_mixed_yields_both_directions_and_total():
    samples = {s.metric: s.value for s in FIO.parse((FIXTURES / "fio" / "randrw-native.json").read_text(), {"rw": "randrw"})}
    assert samples["total_iops"] == pytest.approx(samples["read_iops"] + samples["write_iops"])
    assert samples["read_iops"] > samples["write_iops"]     # rwmixread=70


def test_fio_sequential_write():
    samples = {s.metric for s in FIO.parse((FIXTURES / "fio" / "write-native.json").read_text(), {"rw": "write"})}
    assert samples == {"write_iops", "write_bw", "write_lat_p50", "write_lat_p99"}


def test_fio_failed_run_is_an_error_not_a_zero():
    with pytest.raises(ParseError, match="job reported error 2"):
        FIO.parse((FIXTURES / "fio" / "failed-native.out").read_text(), FIO_PARAMS)


@pytest.mark.parametrize("cut", [10, 500, 3000])
def test_fio_truncated_json_is_an_error(cut):
    raw = (FIXTURES / "fio" / "randread-native.json").read_text()[:cut]
    with pytest.raises(ParseError):
        FIO.parse(raw, FIO_PARAMS)


@pytest.mark.parametrize("raw", ["", "fio: engine libaio not loadable\n", "{\"jobs\": []}"])
def test_fio_garbage_is_an_error(raw):
    with pytest.raises(ParseError):
        FIO.parse(raw, FIO_PARAMS)


def test_every_parsed_metric_is_declared():
    for f in (FIXTURES / "fio").glob("*.json"):
        for s in FIO.parse(f.read_text(), {"rw": "randrw"}):
            assert s.metric in FIO.METRICS
