"""net_latency (request/response round trips, Perl both ends): prepare, the iteration and the Perl
program. The parser's contract (real captured output, failed, truncated and broken runs) is in
test_workload_contract.py."""


from isobench.workloads.net_latency import PERL, PORT, SCRIPT, NetLatency
from isobench.workloads.servers import END

import captured
from fakes import FakeInst, context

PARAMS = captured.params("net_latency")


def test_default_sizes_are_the_papers():
    assert (PARAMS["request_bytes"], PARAMS["response_bytes"]) == (100, 200)  # the paper's -r 100,200


def test_prepare_installs_both_ends_and_binds_servers_to_the_instance_address():
    inst, client = FakeInst([("ss -Hl", 0, "77\n")]), FakeInst(bind="127.0.0.1")
    ctx = context(inst, client)
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
    ctx = context(FakeInst(), client)
    raw = NetLatency("nl", PARAMS).run_iteration(ctx)
    assert raw.endswith(END)
    assert client.calls == [f"perl {SCRIPT} client {p} 10.9.8.7 {PORT} 100 200 0.5" for p in ("tcp", "udp")]
    assert {s.metric: s.value for s in NetLatency.parse(raw, PARAMS)}["udp_p99"] == 40.0


def test_perl_program_is_bounded():
    assert "alarm($secs + 30)" in PERL and "SO_RCVTIMEO" in PERL and "TCP_NODELAY" in PERL
    assert "while ($t < $end)" in PERL
