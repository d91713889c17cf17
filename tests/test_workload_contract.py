"""What every workload kind keeps to, one test a rule, parametrised over isobench.workloads.KINDS.

Parsers are checked on the real tool output captured in tests/fixtures (see captured.py): exact
values of one sample iteration, read off its raw text; the metric names and sweep points of every
captured iteration; failed runs, truncated, foreign and broken output rejected with ParseError.
What only one kind does (its command builder, prepare, sweep, the meaning of its numbers) is in
tests/test_workloads_<kind>.py.
"""

from __future__ import annotations

import ast
import importlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from isobench import codehash
from isobench.errors import InstanceError, ParseError
from isobench.workloads import KINDS
from isobench.workloads.base import CATEGORIES
from isobench.workloads.servers import END

import captured
from fakes import FakeInst, context


@dataclass(frozen=True)
class Case:
    #: the good iteration whose values are pinned and which BROKEN edits
    sample: str
    #: {point: {metric: value}} of the sample, each value as its raw text states it
    pinned: dict[str, dict[str, float]]
    #: the metrics every good iteration yields, each at every point
    metrics: tuple[str, ...]
    #: a plausible range of every value, by the metric's unit (exclusive)
    bounds: dict[str, tuple[float, float]]
    #: what ParseError says about each captured failed run
    failed: str
    #: where every good iteration is cut: a fraction of its length, or an index
    cuts: tuple[float | int, ...]
    #: output that is not this kind's (besides "" and every other kind's sample)
    garbage: tuple[str, ...] = ()
    #: parameters the garbage is parsed with, over the captured ones
    garbage_params: dict = field(default_factory=dict)
    #: the sweep points, in order
    points: tuple[str, ...] = ("",)
    #: the declared metrics that only other parameters yield (other tests, other access patterns)
    elsewhere: tuple[str, ...] = ()


def sweep(name: str, values) -> tuple[str, ...]:
    return tuple(f"{name}={v}" for v in values)


CASES = {
    "compression": Case(
        "native.out",
        # bytes / (end_ns - start_ns) of the result line
        {"": {"throughput": 8_388_608 / ((1795801390664618354 - 1795801389489856274) / 1e9) / 1e6}},
        ("throughput",), {"MB/s": (0.5, 1000)}, "xz exited with 1",
        (0.05, 0.5, 0.8, 0.9, 0.97, 0.99, -2),
        ("xz: /data/corpus.txt: No such file or directory\n",)),
    "fio": Case(
        "randread-native.json",
        # jobs[0].read: iops, bw_bytes / 1e6, clat_ns percentiles 50 and 99 / 1000
        {"": {"read_iops": 60316.683317, "read_bw": 247.057134, "read_lat_p50": 240.64, "read_lat_p99": 765.952}},
        ("read_iops", "read_bw", "read_lat_p50", "read_lat_p99"),
        {"IOPS": (100, 1e7), "MB/s": (0.1, 1e5), "µs": (1, 1e6)}, "job reported error 2",
        (10, 500, 3000, 0.5, 0.9, 0.999),
        ("fio: engine libaio not loadable\n", '{"jobs": []}'),
        elsewhere=("write_iops", "write_bw", "write_lat_p50", "write_lat_p99", "total_iops",
                   # latency_percentiles: true (test_workloads_fio.py)
                   *(f"{d}_lat_p{p:g}" for d in ("read", "write")
                     for p in (1, 5, 10, 20, 30, 40, 60, 70, 80, 90, 95, 99.5, 99.9)))),
    "linpack": Case(
        "native-iter-01.out",
        {"": {"gflops": 6.694}},  # the WR11C2R4 result line: 6.694e+00
        ("gflops",), {"GFLOPS": (0.5, 500)}, "rejected hpccinf.txt",
        (0.05, 0.5, 0.9, 0.97, 0.999),
        ("garbage\n", "isobench-hpcc exit=0 stopped=0 ms=1 end\n")),
    "stream": Case(
        "native-iter-01.out",
        {"": {"copy": 33.8044, "scale": 40.874, "add": 29.6049, "triad": 29.7708}},
        ("copy", "scale", "add", "triad"), {"GB/s": (1, 1000)}, "sysbench exited with",
        (0.1, 0.5, 0.8, 0.95, 0.99),
        ("Copy: 1 2 3 4\n", "isobench-stream exit=0 end\n")),
    "randomaccess": Case(
        "native-iter-01.out",
        # StarRandomAccess "Average GUP/s 0.079040" on 2 processes; Single GUP/s; MPI "Billion(10^9) Updates"
        {"": {"gups": 0.079040 * 2, "gups_single": 0.113785, "gups_mpi": 0.011492236}},
        ("gups", "gups_single", "gups_mpi"), {"GUPS": (1e-4, 10)}, "rejected hpccinf.txt",
        (0.05, 0.3, 0.6, 0.9, 0.999),
        ("random\naccess\n",)),
    "net_bandwidth": Case(
        "native-iter-01.out",
        # end.sum_received.bits_per_second / 1e9 of each direction
        {"": {"to_env": 22.132203154044491, "from_env": 22.742052359957211}},
        ("to_env", "from_env"), {"Gbit/s": (0.1, 1000)}, "Connection refused",
        (0.1, 0.5, 0.7, 0.95, 0.999),
        ("{}\n" + END, "### isobench direction=to_env attempt=1 exit=0\n{\n" + END)),
    "net_latency": Case(
        "native-iter-01.out",
        {"": {"tcp_mean": 34.916, "tcp_p50": 20.45, "tcp_p99": 96.65,
              "udp_mean": 19.534, "udp_p50": 14.95, "udp_p99": 72.65}},
        ("tcp_mean", "tcp_p50", "tcp_p99", "udp_mean", "udp_p50", "udp_p99"), {"µs": (1, 10000)},
        "Connection refused",
        (1, 10, 60, 150, 250, 300, -len(END) - 5, -5, -1),
        ("isobench-rr proto=tcp\n" + END, "hello\n" * 20)),
    "redis": Case(
        "native-iter-01.out",
        {"connections=1": {"set_rps": 37037.04, "get_rps": 37735.85},
         "connections=5": {"set_rps": 42372.88, "get_rps": 40983.61},
         "connections=10": {"set_rps": 59171.60, "get_rps": 83333.34},
         "connections=50": {"set_rps": 86206.90, "set_lat_avg": 0.302, "set_lat_p50": 0.303, "set_lat_p99": 0.479,
                            "get_rps": 84033.61, "get_lat_avg": 0.305, "get_lat_p50": 0.303, "get_lat_p99": 0.503}},
        tuple(f"{t}_{m}" for t in ("set", "get") for m in ("rps", "lat_avg", "lat_p50", "lat_p99")),
        {"requests/s": (1000, 1e7), "ms": (0, 1000)}, "FLUSHALL",
        (0.05, 0.3, 0.6, 0.9, 0.97, 0.999),
        (END, "### isobench point connections=1 flush=OK exit=0\n" + END), garbage_params={"connections": [1]},
        points=sweep("connections", (1, 5, 10, 50)),
        elsewhere=tuple(f"{t}_{m}" for t in ("incr", "lpush", "lpop", "sadd", "ping_inline", "ping_mbulk")
                        for m in ("rps", "lat_avg", "lat_p50", "lat_p99"))),
    "mysql": Case(
        "native-iter-01.out",
        # "transactions: N (tps per sec.)", latency "avg:" and "95th percentile:" of each run
        {"threads=1": {"read_only_tps": 620.72, "read_only_lat_avg": 1.61, "read_only_lat_p95": 1.82,
                       "read_write_tps": 991.06, "read_write_lat_avg": 1.01, "read_write_lat_p95": 1.39},
         "threads=8": {"read_only_tps": 2056.91, "read_only_lat_avg": 3.87, "read_only_lat_p95": 6.91,
                       "read_write_tps": 941.69, "read_write_lat_avg": 8.43, "read_write_lat_p95": 12.98}},
        tuple(f"{t}_{m}" for t in ("read_only", "read_write") for m in ("tps", "lat_avg", "lat_p95")),
        {"transactions/s": (10, 1e6), "ms": (0, 10000)}, "unable to connect",
        (0.05, 0.4, 0.8, 0.95, 0.99, 0.999),
        (END, "transactions: 10 (10.0 per sec.)\n" + END),
        points=sweep("threads", (1, 8)),
        elsewhere=tuple(f"{t}_{m}" for t in ("write_only", "point_select") for m in ("tps", "lat_avg", "lat_p95"))),
}


def replace(*pairs: tuple[str, str]) -> Callable[[str], str]:
    def edit(raw: str) -> str:
        for old, new in pairs:
            raw = raw.replace(old, new)
        return raw
    return edit


def sub(pattern: str, repl: str, count: int = 0) -> Callable[[str], str]:
    return lambda raw: re.sub(pattern, repl, raw, count=count, flags=re.MULTILINE)


#: the sample with one thing wrong (an edit of its text, or parameters it did not run with), and
#: what ParseError says: (kind, what, edit, params over the captured ones, message)
BROKEN = [
    ("compression", "no-end-time", sub(r" end_ns=\d+", ""), {}, "no result line"),
    ("compression", "no-time-elapsed", sub(r"end_ns=\d+", "end_ns=1795801389489856274"), {}, "impossible timing"),
    ("fio", "nonzero-exit", lambda raw: raw + "\nisobench: fio exit 1\n", {}, "exited with status 1"),
    ("linpack", "residual-failed", replace(("1 tests completed and passed", "0 tests completed and passed"),
                                           ("0 tests completed and failed", "1 tests completed and failed")),
     {}, "residual"),
    ("linpack", "other-n", None, {"n": 4096}, "not the configured"),
    ("linpack", "nonzero-exit", replace(("isobench-hpcc exit=0 stopped=0", "isobench-hpcc exit=1 stopped=0")), {},
     "exited with 1"),
    ("stream", "not-validated", replace(("Solution Validates: avg error less than 1.000000e-13 on all three arrays",
                                         "Failed Validation on array c[], AvgRelAbsErr > epsilon (1e-13): 2e-10")),
     {}, "validate"),
    ("randomaccess", "star-verification", replace(("Node(s) with error 0\nMinimum", "Node(s) with error 1\nMinimum")),
     {}, "verification"),
    ("randomaccess", "mpi-verification", sub(r"\(passed\)", "(failed)", count=1), {}, "MPIRandomAccess verification"),
    ("randomaccess", "other-n", None, {"n": 4096}, r"expected 2\^23"),   # the sample's tables are 2^22 (N=2900)
    ("net_bandwidth", "directions-swapped", replace(("direction=to_env", "direction=tmp"),
                                                    ("direction=from_env", "direction=to_env"),
                                                    ("direction=tmp", "direction=from_env")), {}, "reverse"),
    ("net_bandwidth", "nonzero-exit", replace(("to_env attempt=1 exit=0", "to_env attempt=1 exit=1")), {},
     r"iperf3 failed \(exit 1\)"),
    ("net_bandwidth", "short-transfer", None, {"seconds": 10}, "ended after"),
    ("net_latency", "udp-timeout", sub(r"### isobench proto=udp exit=0\n(.*\n)isobench-rr proto=udp.*\n",
                                       r"### isobench proto=udp exit=255\n\1isobench-rr error=timeout\n"),
     {}, "error=timeout"),
    ("net_latency", "nonzero-exit", replace(("proto=tcp exit=0", "proto=tcp exit=1")), {}, r"client failed \(exit 1\)"),
    ("net_latency", "other-sizes", None, {"response_bytes": 100}, "resp=200"),
    ("redis", "get-row-missing", sub(r'^"GET",.*\n', "", count=1), {}, "CSV has tests"),
    ("redis", "flush-failed", replace(("connections=5 flush=OK", "connections=5 flush=failed")), {},
     "FLUSHALL said failed"),
    ("redis", "garbled-value", replace(('"0.023","0.031","0.063"', '"0.023","0.031","x"')), {}, "garbled CSV row"),
    ("mysql", "fatal-error", replace(("    transactions:                        953",
                                      "FATAL: mysql_stmt_execute() returned error\n    transactions:  953")), {},
     "FATAL: mysql_stmt_execute"),
    ("mysql", "nonzero-exit", replace(("read_write point threads=8 exit=0", "read_write point threads=8 exit=1")), {},
     r"sysbench failed \(exit 1\)"),
    ("mysql", "no-transactions", replace(("993    (991.06 per sec.)", "0      (0.00 per sec.)")), {},
     "no transactions"),
]


def rejection(kind: str, raw: str, params: dict) -> str | None:
    """The ParseError message for raw, or None when it parses."""
    try:
        KINDS[kind].parse(raw, params)
    except ParseError as e:
        return str(e)
    return None


def sample(kind: str) -> str:
    return captured.text(kind, CASES[kind].sample)


def cut(raw: str, where: float) -> str:
    return raw[: int(len(raw) * where)] if isinstance(where, float) else raw[:where]


kinds = pytest.mark.parametrize("kind", sorted(KINDS))


def test_every_kind_has_its_case_and_broken_output():
    assert set(CASES) == set(KINDS)
    assert {row[0] for row in BROKEN} == set(KINDS)


@kinds
def test_declaration(kind):
    cls = KINDS[kind]
    assert cls.kind == kind and cls.__module__ == f"isobench.workloads.{kind}"
    assert cls.CATEGORY in CATEGORIES
    for key, spec in cls.PARAMS.items():
        assert "default" in spec and spec.get("description"), key
    assert cls.METRICS and any(m.primary for m in cls.METRICS.values())
    for name, m in cls.METRICS.items():
        assert m.unit and m.description and isinstance(m.higher_is_better, bool), name
    assert cls.TOOLS and cls.VERSION_ARGV
    yielded, elsewhere = set(CASES[kind].metrics), set(CASES[kind].elsewhere)
    assert set(cls.METRICS) == yielded | elsewhere and not yielded & elsewhere
    assert cls(kind, captured.defaults(kind)).describe() not in ("", kind)


@kinds
def test_fixtures_are_captured_from_native_and_lxc_with_the_defaults(kind):
    assert captured.params(kind) == captured.defaults(kind)
    envs = {env for p in captured.good(kind) for env in ("native", "lxc-bridge") if env in p.name.replace("_", "-")}
    assert envs == {"native", "lxc-bridge"}
    assert captured.failed(kind)
    assert CASES[kind].sample in {p.name for p in captured.good(kind)}


GOOD = [(kind, path) for kind in sorted(KINDS) for path in captured.good(kind)]


@pytest.mark.parametrize("kind, path", GOOD, ids=[f"{k}-{p.name}" for k, p in GOOD])
def test_parses_real_output(kind, path):
    """Every good iteration: each of the metrics at each sweep point once, in declaration order,
    a primary metric at every point, plausible values, a median no larger than its 99th percentile."""
    case, cls = CASES[kind], KINDS[kind]
    samples = cls.parse(path.read_text(), captured.params(kind))
    pairs = [(s.metric, s.point) for s in samples]
    assert len(pairs) == len(set(pairs))
    assert {s.metric for s in samples} <= set(cls.METRICS)
    assert set(pairs) == {(m, p) for m in case.metrics for p in case.points}
    assert list(dict.fromkeys(s.point for s in samples)) == list(case.points)
    order = list(cls.METRICS)
    for point in case.points:
        names = [s.metric for s in samples if s.point == point]
        assert names == sorted(names, key=order.index), point
        assert any(cls.METRICS[m].primary for m in names), point
    values = {pair: s.value for pair, s in zip(pairs, samples)}
    for (metric, point), value in values.items():
        lo, hi = case.bounds[cls.METRICS[metric].unit]
        assert math.isfinite(value) and lo < value < hi, (metric, point, value)
        if metric.endswith("p50") and (metric[:-2] + "99", point) in values:
            assert value <= values[(metric[:-2] + "99", point)], (metric, point)


@kinds
def test_values_are_the_tools(kind):
    case = CASES[kind]
    got = {(s.metric, s.point): s.value for s in KINDS[kind].parse(sample(kind), captured.params(kind))}
    want = {(m, p): v for p, values in case.pinned.items() for m, v in values.items()}
    assert {k: got.get(k) for k in want} == pytest.approx(want, rel=1e-12)


@kinds
def test_failed_runs_raise(kind):
    for path in captured.failed(kind):
        why = rejection(kind, path.read_text(), captured.params(kind))
        assert why is not None and re.search(CASES[kind].failed, why), (path.name, why)


@kinds
def test_truncated_output_raises(kind):
    parsed = [(path.name, where) for path in captured.good(kind) for where in CASES[kind].cuts
              if rejection(kind, cut(path.read_text(), where), captured.params(kind)) is None]
    assert not parsed, f"{kind} parsed output cut at {parsed}"


@kinds
def test_foreign_output_raises(kind):
    case = CASES[kind]
    params = {**captured.params(kind), **case.garbage_params}
    foreign = {"": "", **{f"garbage {i}": g for i, g in enumerate(case.garbage)},
               **{other: sample(other) for other in KINDS if other != kind}}
    parsed = [name for name, raw in foreign.items() if rejection(kind, raw, params) is None]
    assert not parsed, f"{kind} parsed {parsed}"


@pytest.mark.parametrize("kind, what, edit, params, match", BROKEN, ids=[f"{r[0]}-{r[1]}" for r in BROKEN])
def test_broken_output_raises(kind, what, edit, params, match):
    raw = sample(kind)
    if edit:
        assert edit(raw) != raw, "the edit does not apply to the sample"
        raw = edit(raw)
    with pytest.raises(ParseError, match=match):
        KINDS[kind].parse(raw, {**captured.params(kind), **params})


def _parser_code(node: ast.AST) -> bool:
    return isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (node.name == "parse" or any(
        getattr(d, "id", getattr(d, "attr", "")) == codehash.PARSER_DECORATOR for d in node.decorator_list))


@kinds
def test_measuring_code_calls_no_parser_code(kind):
    """measure_hash leaves ``parse`` and the ``@parser_helper`` functions out of a cell's identity,
    so the code that measures must not use them: an edit would change the measurement unseen."""
    trees = {m: ast.parse(importlib.import_module(m).__loader__.get_source(m))
             for m in codehash.closure(codehash.module_of(KINDS[kind]))}
    parser = {n.name for t in trees.values() for n in ast.walk(t) if _parser_code(n)}
    assert "parse" in parser
    used = []

    def visit(node, module):
        if _parser_code(node):
            return
        name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
        if name in parser:
            used.append(f"{module}:{node.lineno} {name}")
        for child in ast.iter_child_nodes(node):
            visit(child, module)

    for module, tree in trees.items():
        visit(tree, module)
    assert not used


@pytest.mark.parametrize(("kind", "listening", "refusal", "match"), [
    ("mysql", "55", ("prepare", "FATAL: unable to connect to MySQL server"), "sysbench prepare"),
    ("redis", "99", ("ping", "Could not connect to Redis"), "PING"),
])
def test_prepare_fails_when_the_host_client_cannot_reach_the_server(kind, listening, refusal, match):
    """The server is up inside, the client on the host cannot use it: prepare fails, naming the step."""
    cls = KINDS[kind]
    params = {k: spec["default"] for k, spec in cls.PARAMS.items() if "default" in spec}
    inst = FakeInst([("ss -Hltnp", 0, f"{listening}\n")])
    client = FakeInst([(refusal[0], 1, f"{refusal[1]}\n")])
    with pytest.raises(InstanceError, match=match):
        cls(kind, params).prepare(context(inst, client))
