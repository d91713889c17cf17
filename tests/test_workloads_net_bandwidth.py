"""net_bandwidth (iperf3, server inside, client on the host): parser on real output, retries, binding."""

import json
import re
from pathlib import Path

import pytest

import isobench.workloads.net_bandwidth as mod
from isobench.errors import InstanceError, ParseError
from isobench.workloads import KINDS, Context
from isobench.workloads.net_bandwidth import MARK, PORT, NetBandwidth
from isobench.workloads.servers import END

from fakes import FakeInst  # noqa: E402

FIX = Path(__file__).parent / "fixtures" / "net_bandwidth"
PARAMS = json.loads((FIX / "params.json").read_text())
GOOD = sorted(FIX.glob("*-iter-*.out"))
FAILED = sorted(FIX.glob("*-failed*.out"))


def blocks(raw):
    """{direction: tool output} of a captured iteration."""
    marks = list(MARK.finditer(raw))
    return {m["d"]: raw[m.end():marks[i + 1].start() if i + 1 < len(marks) else raw.rindex(END)]
            .lstrip("\n").split("\n", 1)[1] for i, m in enumerate(marks)}


def test_registered_with_declared_params():
    assert KINDS["net_bandwidth"] is NetBandwidth
    for key, spec in NetBandwidth.PARAMS.items():
        assert "default" in spec and spec.get("description"), key
    assert PARAMS == {k: v["default"] for k, v in NetBandwidth.PARAMS.items()}


def test_fixtures_come_from_native_and_lxc():
    names = {p.name.split("-iter-")[0] for p in GOOD}
    assert {"native", "lxc-bridge"} <= names


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.name)
def test_parses_real_output(path):
    raw = path.read_text()
    samples = {s.metric: s.value for s in NetBandwidth.parse(raw, PARAMS)}
    assert set(samples) == set(NetBandwidth.METRICS) == {"to_env", "from_env"}
    for metric, value in samples.items():
        assert 0.1 < value < 1000  # Gbit/s on loopback or a veth pair
        doc = json.loads(blocks(raw)[metric][blocks(raw)[metric].index("{"):])
        assert value == pytest.approx(doc["end"]["sum_received"]["bits_per_second"] / 1e9)


@pytest.mark.parametrize("path", FAILED, ids=lambda p: p.name)
def test_failed_output_raises(path):
    with pytest.raises(ParseError):
        NetBandwidth.parse(path.read_text(), PARAMS)


@pytest.mark.parametrize("frac", [0.1, 0.5, 0.7, 0.95, 0.999])
def test_truncated_output_raises(frac):
    raw = GOOD[0].read_text()
    with pytest.raises(ParseError):
        NetBandwidth.parse(raw[: int(len(raw) * frac)], PARAMS)


@pytest.mark.parametrize("raw", ["", "{}\n" + END, "### isobench direction=to_env attempt=1 exit=0\n{\n" + END,
                                 (FIX.parent / "redis" / "native-iter-01.out").read_text()])
def test_garbage_raises(raw):
    with pytest.raises(ParseError):
        NetBandwidth.parse(raw, PARAMS)


def test_swapped_direction_raises():
    raw = GOOD[0].read_text().replace("direction=to_env", "direction=tmp").replace(
        "direction=from_env", "direction=to_env").replace("direction=tmp", "direction=from_env")
    with pytest.raises(ParseError, match="reverse"):
        NetBandwidth.parse(raw, PARAMS)


def test_short_transfer_raises():
    with pytest.raises(ParseError, match="ended after"):
        NetBandwidth.parse(GOOD[0].read_text(), {**PARAMS, "seconds": 10})


def test_server_binds_to_the_instance_address_only():
    inst = FakeInst([("ss -Hltnp", 0, "4242\n")], port_offset=10000)
    ctx = Context(inst=inst, client=lambda: pytest.fail("prepare needs no client"), cache_dir=Path("/x"), facts={})
    NetBandwidth("nb", PARAMS).prepare(ctx)
    spawn = next(c for c in inst.calls if "iperf3 -s" in c)
    assert f"-B 10.9.8.7 -p {PORT}" in spawn and "0.0.0.0" not in spawn
    assert ctx.facts["iperf3_endpoint"] == f"10.9.8.7:{PORT + 10000}"


def test_server_that_died_is_an_error():
    inst = FakeInst([("ss -Hltnp", 1, "exited: iperf3: error - unable to start listener\n")])
    ctx = Context(inst=inst, client=lambda: inst, cache_dir=Path("/x"), facts={})
    with pytest.raises(InstanceError, match="unable to start listener"):
        NetBandwidth("nb", PARAMS).prepare(ctx)


def test_iteration_round_trip_with_a_retry(monkeypatch):
    good = blocks(GOOD[0].read_text())
    busy = '{"start": {}, "error": "the server is busy running a test. try again later"}\n'
    client = FakeInst([(" -R ", 0, [busy, good["from_env"]]), ("iperf3 -c", 0, good["to_env"])])
    ctx = Context(inst=FakeInst(port_offset=10000), client=lambda: client, cache_dir=Path("/x"), facts={})
    monkeypatch.setattr(mod.time, "sleep", lambda s: None)
    raw = NetBandwidth("nb", PARAMS).run_iteration(ctx)
    assert [(m["d"], m["n"]) for m in MARK.finditer(raw)] == [("to_env", "1"), ("from_env", "1"), ("from_env", "2")]
    assert raw.endswith(END)
    assert {s.metric for s in NetBandwidth.parse(raw, PARAMS)} == {"to_env", "from_env"}
    calls = [c for c in client.calls if c.startswith("iperf3")]
    assert all(f"-c 10.9.8.7 -p {PORT + 10000} -t 1 -P 1" in c for c in calls)
    assert "--rcv-timeout" not in calls[0] and "-R" in calls[1]


def test_stalled_client_is_recorded_and_retried(monkeypatch):
    good = blocks(GOOD[0].read_text())
    stall = InstanceError("client: command timed out after 31s: iperf3")
    client = FakeInst([(" -R ", 0, good["from_env"]), ("iperf3 -c", 0, [stall, stall, stall])])
    ctx = Context(inst=FakeInst(port_offset=10000), client=lambda: client, cache_dir=Path("/x"), facts={})
    monkeypatch.setattr(mod.time, "sleep", lambda s: None)
    raw = NetBandwidth("nb", PARAMS).run_iteration(ctx)
    assert len(re.findall(r"direction=to_env attempt=\d exit=124", raw)) == 3
    with pytest.raises(ParseError, match="to_env"):
        NetBandwidth.parse(raw, PARAMS)
