"""Redis key-value store: redis-server inside, redis-benchmark on the host, a sweep of connections.

As in the paper's scripts: for each client connection count, FLUSHALL, then
``redis-benchmark -c C -n N -d 50 -r 100000 -t set,get`` (50-byte values, 100 000-key space, no
pipelining). The server binds only to the environment's address and keeps nothing on disk (no RDB
snapshots, no AOF). The paper used Redis 2.8.13; this is the image's Redis 7, whose ``--csv``
output gives the rate and latency percentiles per test. Every connection count is a sweep point.
"""

from __future__ import annotations

import csv
import io
import re
import shlex
from typing import Any

from ..errors import InstanceError, ParseError
from ..schematypes import choices, integer, sweep
from .base import Context, Metric, Sample, Workload, metric_family
from .servers import END, lines, require_end, start_server

PORT = 16379
#: -t names and the test names redis-benchmark prints for them
TESTS = {"set": ["SET"], "get": ["GET"], "incr": ["INCR"], "lpush": ["LPUSH"], "lpop": ["LPOP"],
         "sadd": ["SADD"], "ping": ["PING_INLINE", "PING_MBULK"]}
MARK = re.compile(r"^### isobench point connections=(?P<c>\d+) flush=(?P<flush>\S+) exit=(?P<rc>\d+)$", re.M)
COLUMNS = ("rps", "avg_latency_ms", "p50_latency_ms", "p99_latency_ms")


#: per test: its rate and latencies (``{}``: the test's name)
MEMBERS = {"rps": Metric("requests/s", True, "{} requests per second", primary=True),
           "lat_avg": Metric("ms", False, "{} latency, mean"),
           "lat_p50": Metric("ms", False, "{} latency, median"),
           "lat_p99": Metric("ms", False, "{} latency, 99th percentile")}


class Redis(Workload):
    kind = "redis"
    CATEGORY = "application"
    PARAMS = {
        "connections": sweep(1, 10000, default=[1, 5, 10, 50],
                             description="sweep of parallel client connections, -c (the paper: 1 to 120)"),
        "requests": integer(100, default=10000, description="requests per test and point, -n (the paper: 500000)"),
        "tests": choices(sorted(TESTS), default=["set", "get"],
                         description="redis-benchmark -t tests (the paper: ping, set, get, lpush, lpop, sadd)"),
        "value_bytes": integer(1, default=50, description="-d value size (the paper: 50)"),
        "keyspace": integer(1, default=100000, description="-r random key space (the paper: 100000)"),
    }
    METRICS = metric_family({n.lower(): n for names in TESTS.values() for n in names}, MEMBERS)
    TOOLS = (("redis-server", "--version"), ("redis-benchmark", "--version"), ("ss", "-V"))
    VERSION_ARGV = ("redis-server", "--version")

    def prepare(self, ctx: Context) -> None:
        start_server(ctx.inst, ["redis-server", "--bind", ctx.inst.bind_address, "--port", str(PORT),
                                "--protected-mode", "no", "--save", "", "--appendonly", "no",
                                "--daemonize", "no", "--databases", "1"],
                     tag="isobench-redis", port=PORT)
        ep = ctx.inst.endpoint(PORT)
        pong = ctx.client().exec(["redis-cli", "-h", ep.host, "-p", str(ep.port), "ping"], timeout=30)
        if pong.stdout.strip() != "PONG":
            raise InstanceError(f"redis at {ep.host}:{ep.port} does not answer PING: "
                                f"{(pong.stdout + pong.stderr).strip()[:200]}")
        ctx.facts["redis_endpoint"] = f"{ep.host}:{ep.port}"

    def argv(self, host: str, port: int, connections: int) -> list[str]:
        p = self.params
        return ["redis-benchmark", "-h", host, "-p", str(port), "-c", str(connections), "-n", str(p["requests"]),
                "-d", str(p["value_bytes"]), "-r", str(p["keyspace"]), "-t", ",".join(p["tests"]), "--csv"]

    def run_iteration(self, ctx: Context) -> str:
        ep, client = ctx.inst.endpoint(PORT), ctx.client()
        # -n bounds the run; redis-benchmark waits forever for a server that went away, so it also
        # gets a generous time limit (2000 requests/s at least)
        limit = 30 + self.params["requests"] * len(self.params["tests"]) // 2000
        parts = []
        for c in self.params["connections"]:
            flush = client.exec(["redis-cli", "-h", ep.host, "-p", str(ep.port), "flushall"], timeout=60)
            said = flush.stdout.strip()
            if said != "OK":
                parts.append(f"### isobench point connections={c} flush=failed exit=255\n"
                             f"{lines(flush.stdout)}{lines(flush.stderr)}")
                break
            argv = ["timeout", "-k", "5", str(limit), *self.argv(ep.host, ep.port, c)]
            with ctx.point(f"connections={c}"):
                res = client.exec(argv, timeout=limit + 60)
            parts.append(f"### isobench point connections={c} flush={said} exit={res.returncode}\n"
                         f"$ {shlex.join(argv)}\n{lines(res.stdout)}{lines(res.stderr)}")
        return "".join(parts) + END

    @classmethod
    def parse(cls, raw: str, params: dict[str, Any]) -> list[Sample]:
        require_end(cls.kind, raw)
        marks = list(MARK.finditer(raw))
        for m in marks:
            if int(m["rc"]) != 0 or m["flush"] != "OK":
                raise ParseError(f"redis connections={m['c']}: FLUSHALL said {m['flush']}, "
                                 f"redis-benchmark exit {m['rc']}")
        want = params.get("connections")
        if not marks or (want is not None and [int(m["c"]) for m in marks] != list(want)):
            raise ParseError(f"redis: expected points {want}, found {[int(m['c']) for m in marks]} (truncated?)")
        expected = [n for t in (params.get("tests") or ["set", "get"]) for n in TESTS[t]]
        samples = []
        for i, m in enumerate(marks):
            point = f"connections={m['c']}"
            body = raw[m.end():marks[i + 1].start() if i + 1 < len(marks) else len(raw)]
            header = next((ln for ln in body.splitlines() if ln.startswith('"test"')), None)
            if header is None:
                raise ParseError(f"redis {point}: no CSV header in the output")
            cols = next(csv.reader([header]))
            rows = {}
            for row in csv.reader(io.StringIO("\n".join(ln for ln in body.splitlines() if ln.startswith('"')))):
                if len(row) != len(cols):
                    raise ParseError(f"redis {point}: garbled CSV row {row}")
                if row[0] != "test":
                    rows[row[0]] = row
            missing = [c for c in COLUMNS if c not in cols]
            if missing or sorted(rows) != sorted(expected):
                raise ParseError(f"redis {point}: CSV has tests {sorted(rows)} (expected {expected}), "
                                 f"missing columns {missing}")
            for name in expected:
                row = rows[name]
                try:
                    v = {c: float(row[cols.index(c)]) for c in COLUMNS}
                except (ValueError, IndexError):
                    raise ParseError(f"redis {point}: garbled CSV row {row}") from None
                if v["rps"] <= 0 or v["p50_latency_ms"] < 0 or v["p99_latency_ms"] < v["p50_latency_ms"]:
                    raise ParseError(f"redis {point}: implausible values {v}")
                t = name.lower()
                samples += [Sample(f"{t}_rps", v["rps"], point), Sample(f"{t}_lat_avg", v["avg_latency_ms"], point),
                            Sample(f"{t}_lat_p50", v["p50_latency_ms"], point),
                            Sample(f"{t}_lat_p99", v["p99_latency_ms"], point)]
        return samples

    def describe(self) -> str:
        p = self.params
        return (f"redis-benchmark -t {','.join(p['tests'])} -n {p['requests']} -d {p['value_bytes']} "
                f"-r {p['keyspace']}, connections {p['connections']}, server inside, client on the host")
