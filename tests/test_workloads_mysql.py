"""mysql (MariaDB inside, sysbench on the host): prepare, the buffer-pool rule and the sweep. The
parser's contract (real captured output, failed, truncated and broken runs) is in
test_workload_contract.py."""


import pytest

from isobench.errors import ConfigError
from isobench.workloads.mysql import MARK, PORT, SOCKET, Mysql
from isobench.workloads.servers import END

import captured
from fakes import FakeInst, context

PARAMS = captured.params("mysql")


def sysbench_block(raw, test, threads):
    """The sysbench output of one run in a captured iteration."""
    marks = list(MARK.finditer(raw))
    i = next(i for i, m in enumerate(marks) if (m["test"], int(m["t"])) == (test, threads))
    end = marks[i + 1].start() if i + 1 < len(marks) else raw.rindex(END)
    return raw[marks[i].end():end].lstrip("\n").split("\n", 1)[1]


def test_prepare_makes_datadir_server_user_and_tables():
    inst = FakeInst([("ss -Hltnp", 0, "55\n"), ("information_schema", 0, "20000\t5\n")])
    client = FakeInst()
    ctx = context(inst, client)
    Mysql("mysql", PARAMS).prepare(ctx)
    assert inst.calls[0].startswith("mariadb-install-db --no-defaults --user=root --datadir=/data/mysql")
    spawn = next(c for c in inst.calls if "mariadbd" in c and "nohup" in c)
    for opt in ("--bind-address=10.9.8.7", f"--port={PORT}", "--skip-log-bin", "--innodb-buffer-pool-size=64M",
                "--innodb-flush-log-at-trx-commit=0", "--innodb-flush-method=O_DIRECT", "--query-cache-type=0"):
        assert opt in spawn
    assert "0.0.0.0" not in spawn
    assert any(f"mariadb --socket={SOCKET} -uroot -e CREATE DATABASE sbtest" in c for c in inst.calls)
    assert client.calls == [("sysbench oltp_read_write --db-driver=mysql --mysql-host=10.9.8.7 "
                             f"--mysql-port={PORT} --mysql-user=sbtest --mysql-password=sbtest --mysql-db=sbtest "
                             "--tables=2 --table-size=10000 --threads=2 prepare")]
    assert ctx.facts["dataset_mib"] == "5" and ctx.facts["mysql_endpoint"] == f"10.9.8.7:{PORT}"


def test_tables_larger_than_the_buffer_pool_are_refused():
    inst = FakeInst([("ss -Hltnp", 0, "55\n"), ("information_schema", 0, "2000000\t480\n")])
    ctx = context(inst, FakeInst())
    with pytest.raises(ConfigError, match="buffer pool"):
        Mysql("mysql", {**PARAMS, "table_size": 1000000}).prepare(ctx)


def test_iteration_sweeps_tests_and_threads_bounded_in_time():
    block = sysbench_block(captured.good("mysql")[0].read_text(), "oltp_read_only", 1)
    client = FakeInst([("sysbench", 0, block)])
    ctx = context(FakeInst(), client)
    raw = Mysql("mysql", PARAMS).run_iteration(ctx)
    assert [(m["test"], int(m["t"])) for m in MARK.finditer(raw)] == [
        (t, n) for t in PARAMS["tests"] for n in PARAMS["threads"]]
    for line in client.calls:
        assert line.startswith("timeout -k 5 61 sysbench oltp_read_")
        assert "--time=1 --events=0" in line and "--mysql-host=10.9.8.7" in line and line.endswith(" run")
    assert len(Mysql.parse(raw, PARAMS)) == 12
