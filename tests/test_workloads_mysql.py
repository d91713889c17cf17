"""mysql (MariaDB inside, sysbench on the host): parser on real output, prepare and sweep."""

import json
from pathlib import Path

import pytest

from isobench.errors import ConfigError, InstanceError, ParseError
from isobench.workloads import KINDS, Context
from isobench.workloads.mysql import MARK, PORT, SOCKET, Mysql
from isobench.workloads.servers import END

from fakes import FakeInst  # noqa: E402

FIX = Path(__file__).parent / "fixtures" / "mysql"
PARAMS = json.loads((FIX / "params.json").read_text())
GOOD = sorted(FIX.glob("*-iter-*.out"))
FAILED = sorted(FIX.glob("*-failed*.out"))


def sysbench_block(raw, test, threads):
    """The sysbench output of one run in a captured iteration."""
    marks = list(MARK.finditer(raw))
    i = next(i for i, m in enumerate(marks) if (m["test"], int(m["t"])) == (test, threads))
    end = marks[i + 1].start() if i + 1 < len(marks) else raw.rindex(END)
    return raw[marks[i].end():end].lstrip("\n").split("\n", 1)[1]


def test_registered_with_declared_params():
    assert KINDS["mysql"] is Mysql
    for key, spec in Mysql.PARAMS.items():
        assert "default" in spec and spec.get("description"), key
    assert PARAMS == {k: v["default"] for k, v in Mysql.PARAMS.items()}


def test_fixtures_come_from_native_and_lxc():
    names = {p.name.split("-iter-")[0] for p in GOOD}
    assert {"native", "lxc-bridge"} <= names


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.name)
def test_parses_real_output(path):
    samples = Mysql.parse(path.read_text(), PARAMS)
    assert {s.point for s in samples} == {f"threads={t}" for t in PARAMS["threads"]}
    assert {s.metric for s in samples} == {f"{t}_{m}" for t in ("read_only", "read_write")
                                           for m in ("tps", "lat_avg", "lat_p95")}
    assert len(samples) == 2 * len(PARAMS["threads"]) * 3
    for s in samples:
        assert s.metric in Mysql.METRICS
        assert (10 < s.value < 1_000_000) if s.metric.endswith("_tps") else (0 < s.value < 10_000)


def test_values_are_sysbenchs():
    raw = GOOD[0].read_text()
    block = sysbench_block(raw, "oltp_read_only", 8)
    tps = float(block.split("transactions:")[1].split("(")[1].split()[0])
    got = {(s.metric, s.point): s.value for s in Mysql.parse(raw, PARAMS)}
    assert got[("read_only_tps", "threads=8")] == tps


@pytest.mark.parametrize("path", FAILED, ids=lambda p: p.name)
def test_failed_output_raises(path):
    with pytest.raises(ParseError, match="unable to connect"):
        Mysql.parse(path.read_text(), PARAMS)


@pytest.mark.parametrize("frac", [0.05, 0.4, 0.8, 0.95, 0.99, 0.999])
def test_truncated_output_raises(frac):
    raw = GOOD[0].read_text()
    with pytest.raises(ParseError):
        Mysql.parse(raw[: int(len(raw) * frac)], PARAMS)


@pytest.mark.parametrize("raw", ["", END, "transactions: 10 (10.0 per sec.)\n" + END,
                                 (FIX.parent / "redis" / "native-iter-01.out").read_text()])
def test_garbage_raises(raw):
    with pytest.raises(ParseError):
        Mysql.parse(raw, PARAMS)


def test_zero_transactions_raises():
    raw = GOOD[0].read_text()
    block = sysbench_block(raw, "oltp_read_write", 1)
    line = next(l for l in block.splitlines() if "transactions:" in l)
    raw = raw.replace(line, "    transactions:                        0      (0.00 per sec.)")
    with pytest.raises(ParseError, match="no transactions"):
        Mysql.parse(raw, PARAMS)


def test_prepare_makes_datadir_server_user_and_tables():
    inst = FakeInst([("ss -Hltnp", 0, "55\n"), ("information_schema", 0, "20000\t5\n")])
    client = FakeInst()
    ctx = Context(inst=inst, client=lambda: client, cache_dir=Path("/x"), facts={})
    Mysql("mysql", PARAMS).prepare(ctx)
    assert inst.calls[0].startswith("mariadb-install-db --no-defaults --user=root --datadir=/data/mysql")
    spawn = next(c for c in inst.calls if "mariadbd" in c and "nohup" in c)
    for opt in ("--bind-address=10.9.8.7", f"--port={PORT}", "--skip-log-bin", "--innodb-buffer-pool-size=64M",
                "--innodb-flush-log-at-trx-commit=0", "--innodb-flush-method=O_DIRECT", "--query-cache-type=0"):
        assert opt in spawn
    assert "0.0.0.0" not in spawn
    assert any(f"mariadb --socket={SOCKET} -uroot -e CREATE DATABASE sbtest" in c for c in inst.calls)
    assert client.calls == ["sysbench oltp_read_write --db-driver=mysql --mysql-host=10.9.8.7 "
                            f"--mysql-port={PORT} --mysql-user=sbtest --mysql-password=sbtest --mysql-db=sbtest "
                            "--tables=2 --table-size=10000 --threads=2 prepare"]
    assert ctx.facts["dataset_mib"] == "5" and ctx.facts["mysql_endpoint"] == f"10.9.8.7:{PORT}"


def test_tables_larger_than_the_buffer_pool_are_refused():
    inst = FakeInst([("ss -Hltnp", 0, "55\n"), ("information_schema", 0, "2000000\t480\n")])
    ctx = Context(inst=inst, client=lambda: FakeInst(), cache_dir=Path("/x"), facts={})
    with pytest.raises(ConfigError, match="buffer pool"):
        Mysql("mysql", {**PARAMS, "table_size": 1000000}).prepare(ctx)


def test_failed_table_creation_is_an_error():
    inst = FakeInst([("ss -Hltnp", 0, "55\n")])
    client = FakeInst([("prepare", 1, "FATAL: unable to connect to MySQL server\n")])
    with pytest.raises(InstanceError, match="sysbench prepare"):
        Mysql("mysql", PARAMS).prepare(Context(inst=inst, client=lambda: client, cache_dir=Path("/x"), facts={}))


def test_iteration_sweeps_tests_and_threads_bounded_in_time():
    block = sysbench_block(GOOD[0].read_text(), "oltp_read_only", 1)
    client = FakeInst([("sysbench", 0, block)])
    ctx = Context(inst=FakeInst(), client=lambda: client, cache_dir=Path("/x"), facts={})
    raw = Mysql("mysql", PARAMS).run_iteration(ctx)
    assert [(m["test"], int(m["t"])) for m in MARK.finditer(raw)] == [
        (t, n) for t in PARAMS["tests"] for n in PARAMS["threads"]]
    for line in client.calls:
        assert line.startswith("timeout -k 5 61 sysbench oltp_read_")
        assert "--time=1 --events=0" in line and "--mysql-host=10.9.8.7" in line and line.endswith(" run")
    assert len(Mysql.parse(raw, PARAMS)) == 12
