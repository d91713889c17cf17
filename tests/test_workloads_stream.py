"""stream (STREAM kernels in sysbench's LuaJIT): STREAM's byte counting, the cache rule and the
command. The parser's contract (real captured output, failed, truncated and broken runs) is in
test_workload_contract.py."""

from pathlib import Path

import pytest

from isobench.errors import ConfigError
from isobench.workloads import Context
from isobench.workloads.stream import LUA, Stream, last_level_cache, parse_size

import captured
from fakes import FakeInst

PARAMS = captured.params("stream")

#: this host: two cores with private L1/L2, one shared 32 MiB L3
CACHES = """1 Data 32K 0
1 Data 32K 1
1 Instruction 32K 0
1 Instruction 32K 1
2 Unified 1024K 0
2 Unified 1024K 1
3 Unified 32768K 0-1
"""


@pytest.mark.parametrize("path", captured.good("stream"), ids=lambda p: p.name)
def test_rate_follows_streams_byte_counting(path):
    raw = path.read_text()
    n = PARAMS["array_mib"] * 1024 * 1024 // 8
    rows = {line.split(":")[0].lower(): line.split() for line in raw.splitlines() if line.split(":")[0] in
            ("Copy", "Scale", "Add", "Triad")}
    for s in Stream.parse(raw, PARAMS):
        words = 2 if s.metric in ("copy", "scale") else 3
        assert s.value == pytest.approx(words * 8 * n / float(rows[s.metric][3]) / 1e9, rel=1e-3)


def test_last_level_cache():
    assert parse_size("32768K") == 32 * 1024 * 1024 and parse_size("2M") == 2 * 1024 * 1024
    assert last_level_cache(CACHES) == 32 * 1024 * 1024
    two_sockets = CACHES.replace("3 Unified 32768K 0-1", "3 Unified 20480K 0-7,16-23\n3 Unified 20480K 8-15,24-31")
    assert last_level_cache(two_sockets) == 40 * 1024 * 1024
    assert last_level_cache("") == 0


def test_prepare_installs_script_and_enforces_4x_cache():
    inst = FakeInst([("cache/index", 0, CACHES)], bind="127.0.0.1")
    ctx = Context(inst=inst, client=lambda: inst, cache_dir=Path("/nonexistent"), facts={})
    Stream("stream", PARAMS).prepare(ctx)
    assert ctx.facts == {"llc_bytes": 32 * 1024 * 1024, "stream_array_bytes": 128 * 1024 * 1024}
    assert LUA.encode() in inst.inputs
    with pytest.raises(ConfigError, match="4x the last-level caches"):
        Stream("stream", {**PARAMS, "array_mib": 127}).prepare(ctx)


def test_command():
    cmd = Stream("stream", {**PARAMS, "array_mib": 256, "threads": 4}).command()
    assert "--threads=4 --array-size=33554432 --ntimes=10" in cmd
    assert cmd.startswith("exec 2>&1; rm -f /tmp/isobench-stream.barrier; sysbench /tmp/isobench-stream.lua")
