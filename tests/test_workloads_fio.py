"""fio: what its numbers mean, and the access patterns besides randread. The parser's contract
(real captured output, failed, truncated and foreign runs) is in test_workload_contract.py."""

from __future__ import annotations

import captured
import pytest
from isobench.workloads.fio import Fio


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
