"""net_latency (request/response round trips, Perl both ends): parser on real output, command builder."""

import json
import re
from pathlib import Path

import pytest

from isobench.errors import ParseError
from isobench.workloads import KINDS, Context
from isobench.workloads.servers import END
from isobench.workloads.net_latency import PERL, PORT, SCRIPT, NetLatency

from fakes import FakeInst  # noqa: E402

FIX = Path(__file__).parent / "fixtures" / "net_latency"
PARAMS = json.loads((FIX / "params.json").read_text())
GOOD = sorted(FIX.glob("*-iter-*.out"))
FAILED = sorted(FIX.glob("*-failed*.out"))


def test_registered_with_declared_params():
    assert KINDS["net_latency"] is NetLatency
    for key, spec in NetLatency.PARAMS.items():
        assert "default" in spec and spec.get("description"), key
    assert PARAMS == {k: v["default"] for k, v in NetLatency.PARAMS.items()}
    assert (PARAMS["request_bytes"], PARAMS["response_bytes"]) == (100, 200)  # the paper's -r 100,200


def test_fixtures_come_from_native_and_lxc():
    names = {p.name.split("-iter-")[0] for p in GOOD}
    assert {"native", "lxc-bridge"} <= names


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.name)
def test_parses_real_output(path):
    samples = NetLatency.parse(path.read_text(), PARAMS)
    assert [s.metric for s in samples] == ["tcp_mean", "tcp_p50", "tcp_p99", "udp_mean", "udp_p50", "udp_p99"]
    values = {s.metric: s.value for s in samples}
    for s in samples:
        assert s.metric in NetLatency.METRICS and s.point == ""
        assert 1 < s.value < 10000  # µs
    assert values["tcp_p50"] <= values["tcp_p99"] and values["udp_p50"] <= values["udp_p99"]


@pytest.mark.parametrize("path", FAILED, ids=lambda p: p.name)
def test_failed_output_raises(path):
    with pytest.raises(ParseError, match="Connection refused"):
        NetLatency.parse(path.read_text(), PARAMS)


@pytest.mark.parametrize("cut", [1, 10, 60, 150, 250, 300, -len(END) - 5, -5, -1])
def test_truncated_output_raises(cut):
    raw = GOOD[0].read_text()
    with pytest.raises(ParseError):
        NetLatency.parse(raw[:cut], PARAMS)


@pytest.mark.parametrize("raw", ["", "isobench-rr proto=tcp\n" + END, "hello\n" * 20,
                                 (FIX.parent / "mysql" / "native-iter-01.out").read_text()])
def test_garbage_raises(raw):
    with pytest.raises(ParseError):
        NetLatency.parse(raw, PARAMS)


def test_udp_timeout_raises():
    raw = GOOD[0].read_text()
    raw = re.sub(r"### isobench proto=udp exit=0\n(.*\n)isobench-rr proto=udp.*\n",
                 r"### isobench proto=udp exit=255\n\1isobench-rr error=timeout\n", raw)
    with pytest.raises(ParseError, match="error=timeout"):
        NetLatency.parse(raw, PARAMS)


def test_sizes_must_match_the_configuration():
    with pytest.raises(ParseError, match="resp=200"):
        NetLatency.parse(GOOD[0].read_text(), {**PARAMS, "response_bytes": 100})


def test_prepare_installs_both_ends_and_binds_servers_to_the_instance_address():
    inst, client = FakeInst([("ss -Hl", 0, "77\n")]), FakeInst(bind="127.0.0.1")
    ctx = Context(inst=inst, client=lambda: client, cache_dir=Path("/x"), facts={})
    NetLatency("nl", PARAMS).prepare(ctx)
    for i in (inst, client):
        assert any(inp == PERL.encode() and SCRIPT in line for line, inp in zip(i.calls, i.inputs))
    spawns = [line for line in inst.calls if f"perl {SCRIPT} server" in line and "nohup" in line]
    assert len(spawns) == 2
    assert all(f"10.9.8.7 {PORT} 100 200" in s for s in spawns) and "0.0.0.0" not in " ".join(spawns)
    waits = [line for line in inst.calls if "ss -Hl" in line]
    assert any("ss -Hltnp" in w for w in waits) and any("ss -Hlunp" in w for w in waits)


def test_iteration_round_trip():
    line = "isobench-rr proto={} req=100 resp=200 n=5000 seconds=0.500001 mean_us=20.0 p50_us=19.0 p99_us=40.0\n"
    client = FakeInst([(" client tcp ", 0, line.format("tcp")), (" client udp ", 0, line.format("udp"))])
    ctx = Context(inst=FakeInst(), client=lambda: client, cache_dir=Path("/x"), facts={})
    raw = NetLatency("nl", PARAMS).run_iteration(ctx)
    assert raw.endswith(END)
    assert client.calls == [f"perl {SCRIPT} client {p} 10.9.8.7 {PORT} 100 200 0.5" for p in ("tcp", "udp")]
    assert {s.metric: s.value for s in NetLatency.parse(raw, PARAMS)}["udp_p99"] == 40.0


def test_perl_program_is_bounded():
    assert "alarm($secs + 30)" in PERL and "SO_RCVTIMEO" in PERL and "TCP_NODELAY" in PERL
    assert "while ($t < $end)" in PERL
