"""redis (redis-server inside, redis-benchmark on the host): the sweep and the binding. The parser's
contract (real captured output, failed, truncated and broken runs) is in test_workload_contract.py."""


import pytest

from isobench.errors import ParseError
from isobench.workloads.redis import MARK, PORT, Redis
from isobench.workloads.servers import END

import captured
from fakes import FakeInst, context

PARAMS = captured.params("redis")
CSV = ('"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms",'
       '"max_latency_ms"\n"SET","50000.00","0.100","0.020","0.095","0.150","0.200","1.000"\n'
       '"GET","52000.00","0.090","0.020","0.087","0.140","0.190","0.900"\n')


def test_server_binds_to_the_instance_address_and_keeps_nothing_on_disk():
    inst = FakeInst([("ss -Hltnp", 0, "99\n")])
    client = FakeInst([("ping", 0, "PONG\n")])
    ctx = context(inst, client)
    Redis("redis", PARAMS).prepare(ctx)
    spawn = next(c for c in inst.calls if "redis-server" in c and "nohup" in c)
    assert f"--bind 10.9.8.7 --port {PORT}" in spawn and "0.0.0.0" not in spawn
    assert "--save ''" in spawn and "--appendonly no" in spawn
    assert client.calls == [f"redis-cli -h 10.9.8.7 -p {PORT} ping"]


def test_iteration_sweeps_connections_with_the_papers_options():
    client = FakeInst([("flushall", 0, "OK\n"), ("redis-benchmark", 0, CSV)])
    ctx = context(FakeInst(), client)
    raw = Redis("redis", PARAMS).run_iteration(ctx)
    assert [int(m["c"]) for m in MARK.finditer(raw)] == PARAMS["connections"] and raw.endswith(END)
    bench = [c for c in client.calls if "redis-benchmark" in c]
    assert len(bench) == len(PARAMS["connections"])
    for c, line in zip(PARAMS["connections"], bench):
        assert line.startswith("timeout -k 5 ")
        assert f"-h 10.9.8.7 -p {PORT} -c {c} -n 10000 -d 50 -r 100000 -t set,get --csv" in line
    assert len(Redis.parse(raw, PARAMS)) == 4 * 8


def test_iteration_stops_when_the_server_is_gone():
    client = FakeInst([("flushall", 1, "")])
    ctx = context(FakeInst(), client)
    raw = Redis("redis", PARAMS).run_iteration(ctx)
    assert not any("redis-benchmark" in c for c in client.calls)
    with pytest.raises(ParseError):
        Redis.parse(raw, PARAMS)
