"""redis (redis-server inside, redis-benchmark on the host): parser on real output, sweep, binding."""

import json
from pathlib import Path

import pytest

from isobench.errors import InstanceError, ParseError
from isobench.workloads import KINDS, Context
from isobench.workloads.servers import END
from isobench.workloads.redis import MARK, PORT, Redis

from fakes import FakeInst  # noqa: E402

FIX = Path(__file__).parent / "fixtures" / "redis"
PARAMS = json.loads((FIX / "params.json").read_text())
GOOD = sorted(FIX.glob("*-iter-*.out"))
FAILED = sorted(FIX.glob("*-failed*.out"))
CSV = ('"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms",'
       '"max_latency_ms"\n"SET","50000.00","0.100","0.020","0.095","0.150","0.200","1.000"\n'
       '"GET","52000.00","0.090","0.020","0.087","0.140","0.190","0.900"\n')


def test_registered_with_declared_params():
    assert KINDS["redis"] is Redis
    for key, spec in Redis.PARAMS.items():
        assert "default" in spec and spec.get("description"), key
    assert PARAMS == {k: v["default"] for k, v in Redis.PARAMS.items()}


def test_fixtures_come_from_native_and_lxc():
    names = {p.name.split("-iter-")[0] for p in GOOD}
    assert {"native", "lxc-bridge"} <= names


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.name)
def test_parses_real_output(path):
    samples = Redis.parse(path.read_text(), PARAMS)
    points = [f"connections={c}" for c in PARAMS["connections"]]
    assert sorted({s.point for s in samples}) == sorted(points)
    assert len(samples) == len(points) * 2 * 4  # SET and GET: rps, avg, p50, p99
    for s in samples:
        assert s.metric in Redis.METRICS
        if s.metric.endswith("_rps"):
            assert 1000 < s.value < 10_000_000
        else:
            assert 0 < s.value < 1000  # ms
    by = {(s.metric, s.point): s.value for s in samples}
    for p in points:
        assert by[("set_lat_p50", p)] <= by[("set_lat_p99", p)]


@pytest.mark.parametrize("path", FAILED, ids=lambda p: p.name)
def test_failed_output_raises(path):
    with pytest.raises(ParseError, match="FLUSHALL"):
        Redis.parse(path.read_text(), PARAMS)


@pytest.mark.parametrize("frac", [0.05, 0.3, 0.6, 0.9, 0.97, 0.999])
def test_truncated_output_raises(frac):
    raw = GOOD[0].read_text()
    with pytest.raises(ParseError):
        Redis.parse(raw[: int(len(raw) * frac)], PARAMS)


@pytest.mark.parametrize("raw", ["", END, "### isobench point connections=1 flush=OK exit=0\n" + END,
                                 "### isobench point connections=1 flush=OK exit=0\n" + CSV.replace("0.190", "x") + END,
                                 (FIX.parent / "net_latency" / "native-iter-01.out").read_text()])
def test_garbage_raises(raw):
    with pytest.raises(ParseError):
        Redis.parse(raw, {**PARAMS, "connections": [1]})


def test_missing_test_row_raises():
    raw = GOOD[0].read_text()
    first_get = raw.index('"GET"')
    raw = raw[:first_get] + raw[raw.index("\n", first_get) + 1:]
    with pytest.raises(ParseError, match="CSV has tests"):
        Redis.parse(raw, PARAMS)


def test_server_binds_to_the_instance_address_and_keeps_nothing_on_disk():
    inst = FakeInst([("ss -Hltnp", 0, "99\n")])
    client = FakeInst([("ping", 0, "PONG\n")])
    ctx = Context(inst=inst, client=lambda: client, cache_dir=Path("/x"), facts={})
    Redis("redis", PARAMS).prepare(ctx)
    spawn = next(c for c in inst.calls if "redis-server" in c and "nohup" in c)
    assert f"--bind 10.9.8.7 --port {PORT}" in spawn and "0.0.0.0" not in spawn
    assert "--save ''" in spawn and "--appendonly no" in spawn
    assert client.calls == [f"redis-cli -h 10.9.8.7 -p {PORT} ping"]


def test_prepare_refuses_a_server_that_does_not_answer():
    inst = FakeInst([("ss -Hltnp", 0, "99\n")])
    client = FakeInst([("ping", 1, "Could not connect to Redis\n")])
    with pytest.raises(InstanceError, match="PING"):
        Redis("redis", PARAMS).prepare(Context(inst=inst, client=lambda: client, cache_dir=Path("/x"), facts={}))


def test_iteration_sweeps_connections_with_the_papers_options():
    client = FakeInst([("flushall", 0, "OK\n"), ("redis-benchmark", 0, CSV)])
    ctx = Context(inst=FakeInst(), client=lambda: client, cache_dir=Path("/x"), facts={})
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
    ctx = Context(inst=FakeInst(), client=lambda: client, cache_dir=Path("/x"), facts={})
    raw = Redis("redis", PARAMS).run_iteration(ctx)
    assert not any("redis-benchmark" in c for c in client.calls)
    with pytest.raises(ParseError):
        Redis.parse(raw, PARAMS)
