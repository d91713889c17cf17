"""stream (STREAM kernels in sysbench's LuaJIT): parser on real output, sizes, cache rule."""

import json
from pathlib import Path

import pytest

from isobench.drivers.base import Endpoint, Instance
from isobench.errors import ConfigError, ParseError
from isobench.workloads import KINDS, Context
from isobench.workloads.stream import LUA, Stream, last_level_cache, parse_size

FIX = Path(__file__).parent / "fixtures" / "stream"
PARAMS = json.loads((FIX / "params.json").read_text())
GOOD = sorted(FIX.glob("*-iter-*.out"))
FAILED = sorted(FIX.glob("*-failed*.out"))

#: this host: two cores with private L1/L2, one shared 32 MiB L3
CACHES = """1 Data 32K 0
1 Data 32K 1
1 Instruction 32K 0
1 Instruction 32K 1
2 Unified 1024K 0
2 Unified 1024K 1
3 Unified 32768K 0-1
"""


def test_registered_with_declared_params():
    assert KINDS["stream"] is Stream
    for key, spec in Stream.PARAMS.items():
        assert "default" in spec and spec.get("description"), key
    assert PARAMS == {k: v["default"] for k, v in Stream.PARAMS.items()}


def test_fixtures_come_from_native_and_lxc():
    names = {p.name.split("-iter-")[0] for p in GOOD}
    assert {"native", "lxc-bridge"} <= names


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.name)
def test_parses_real_output(path):
    samples = Stream.parse(path.read_text(), PARAMS)
    assert [s.metric for s in samples] == ["copy", "scale", "add", "triad"]
    for s in samples:
        assert s.metric in Stream.METRICS and s.point == ""
        assert 1 < s.value < 1000  # GB/s


def test_rate_follows_streams_byte_counting():
    raw = GOOD[0].read_text()
    n = 128 * 1024 * 1024 // 8
    rows = {l.split(":")[0].lower(): l.split() for l in raw.splitlines() if l.split(":")[0] in
            ("Copy", "Scale", "Add", "Triad")}
    for s in Stream.parse(raw, PARAMS):
        words = 2 if s.metric in ("copy", "scale") else 3
        assert s.value == pytest.approx(words * 8 * n / float(rows[s.metric][3]) / 1e9, rel=1e-3)


@pytest.mark.parametrize("path", FAILED, ids=lambda p: p.name)
def test_failed_output_raises(path):
    with pytest.raises(ParseError):
        Stream.parse(path.read_text(), PARAMS)


@pytest.mark.parametrize("frac", [0.1, 0.5, 0.8, 0.95, 0.99])
def test_truncated_output_raises(frac):
    raw = GOOD[0].read_text()
    with pytest.raises(ParseError):
        Stream.parse(raw[: int(len(raw) * frac)], PARAMS)


@pytest.mark.parametrize("raw", ["", "Copy: 1 2 3 4\n", "isobench-stream exit=0 end\n",
                                 (FIX.parent / "linpack" / "native-iter-01.out").read_text()])
def test_garbage_raises(raw):
    with pytest.raises(ParseError):
        Stream.parse(raw, PARAMS)


def test_failed_validation_raises():
    raw = GOOD[0].read_text().replace("Solution Validates: avg error less than 1.000000e-13 on all three arrays",
                                      "Failed Validation on array c[], AvgRelAbsErr > epsilon (1e-13): 2e-10")
    with pytest.raises(ParseError, match="validate"):
        Stream.parse(raw, PARAMS)


def test_last_level_cache():
    assert parse_size("32768K") == 32 * 1024 * 1024 and parse_size("2M") == 2 * 1024 * 1024
    assert last_level_cache(CACHES) == 32 * 1024 * 1024
    two_sockets = CACHES.replace("3 Unified 32768K 0-1", "3 Unified 20480K 0-7,16-23\n3 Unified 20480K 8-15,24-31")
    assert last_level_cache(two_sockets) == 40 * 1024 * 1024
    assert last_level_cache("") == 0


class FakeInst(Instance):
    def __init__(self, caches: str):
        super().__init__("fake")
        self.caches, self.calls = caches, []

    def _exec(self, argv, timeout, input):
        self.calls.append((list(argv), input))
        return 0, (self.caches.encode() if "cache/index" in " ".join(argv) else b""), b""

    def endpoint(self, port):
        return Endpoint("127.0.0.1", port)

    @property
    def bind_address(self):
        return "127.0.0.1"

    def _teardown(self):
        pass


def test_prepare_installs_script_and_enforces_4x_cache():
    inst = FakeInst(CACHES)
    ctx = Context(inst=inst, client=lambda: inst, cache_dir=Path("/nonexistent"), facts={})
    Stream("stream", PARAMS).prepare(ctx)
    assert ctx.facts == {"llc_bytes": 32 * 1024 * 1024, "stream_array_bytes": 128 * 1024 * 1024}
    assert any(inp == LUA.encode() for _, inp in inst.calls)
    with pytest.raises(ConfigError, match="4x the last-level caches"):
        Stream("stream", {**PARAMS, "array_mib": 127}).prepare(ctx)


def test_command():
    cmd = Stream("stream", {**PARAMS, "array_mib": 256, "threads": 4}).command()
    assert "--threads=4 --array-size=33554432 --ntimes=10" in cmd
    assert cmd.startswith("exec 2>&1; rm -f /tmp/isobench-stream.barrier; sysbench /tmp/isobench-stream.lua")
