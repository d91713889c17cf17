"""net_bandwidth (iperf3, server inside, client on the host): the rate, retries and binding. The
parser's contract (real captured output, failed, truncated and broken runs) is in
test_workload_contract.py."""

import json
import re
from pathlib import Path

import pytest

import isobench.workloads.net_bandwidth as mod
from isobench.errors import InstanceError, ParseError
from isobench.workloads import Context
from isobench.workloads.net_bandwidth import MARK, PORT, NetBandwidth
from isobench.workloads.servers import END

import captured
from fakes import FakeInst, context

PARAMS = captured.params("net_bandwidth")
GOOD = captured.good("net_bandwidth")


def blocks(raw):
    """{direction: tool output} of a captured iteration."""
    marks = list(MARK.finditer(raw))
    return {m["d"]: raw[m.end():marks[i + 1].start() if i + 1 < len(marks) else raw.rindex(END)]
            .lstrip("\n").split("\n", 1)[1] for i, m in enumerate(marks)}


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.name)
def test_rate_is_the_receivers_goodput(path):
    raw = path.read_text()
    for s in NetBandwidth.parse(raw, PARAMS):
        doc = json.loads(blocks(raw)[s.metric][blocks(raw)[s.metric].index("{"):])
        assert s.value == pytest.approx(doc["end"]["sum_received"]["bits_per_second"] / 1e9)


def test_server_binds_to_the_instance_address_only():
    inst = FakeInst([("ss -Hltnp", 0, "4242\n")], port_offset=10000)
    ctx = Context(inst=inst, client=lambda: pytest.fail("prepare needs no client"), cache_dir=Path("/x"), facts={})
    NetBandwidth("nb", PARAMS).prepare(ctx)
    spawn = next(c for c in inst.calls if "iperf3 -s" in c)
    assert f"-B 10.9.8.7 -p {PORT}" in spawn and "0.0.0.0" not in spawn
    assert ctx.facts["iperf3_endpoint"] == f"10.9.8.7:{PORT + 10000}"


def test_server_that_died_is_an_error():
    inst = FakeInst([("ss -Hltnp", 1, "exited: iperf3: error - unable to start listener\n")])
    ctx = context(inst, inst)
    with pytest.raises(InstanceError, match="unable to start listener"):
        NetBandwidth("nb", PARAMS).prepare(ctx)


def test_iteration_round_trip_with_a_retry(monkeypatch):
    good = blocks(GOOD[0].read_text())
    busy = '{"start": {}, "error": "the server is busy running a test. try again later"}\n'
    client = FakeInst([(" -R ", 0, [busy, good["from_env"]]), ("iperf3 -c", 0, good["to_env"])])
    ctx = context(FakeInst(port_offset=10000), client)
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
    ctx = context(FakeInst(port_offset=10000), client)
    monkeypatch.setattr(mod.time, "sleep", lambda s: None)
    raw = NetBandwidth("nb", PARAMS).run_iteration(ctx)
    assert len(re.findall(r"direction=to_env attempt=\d exit=124", raw)) == 3
    with pytest.raises(ParseError, match="to_env"):
        NetBandwidth.parse(raw, PARAMS)
