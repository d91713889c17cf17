"""MySQL OLTP: MariaDB inside the environment, sysbench on the host, a sweep of client threads.

prepare() makes a fresh datadir in /data (``mariadb-install-db``), starts ``mariadbd`` bound to the
environment's address only, with the paper's settings (InnoDB, a buffer pool that holds the whole
dataset, ``innodb_flush_log_at_trx_commit=0``, O_DIRECT, no query cache, no binary log), and
creates the sysbench tables from the host (``sysbench oltp_read_write prepare``). The measured
iterations run ``sysbench <test> run`` for every test and thread count, each bounded by ``--time``.
The paper: MySQL 5.5.37 and sysbench 0.4.12 ``--test=oltp`` read-only, one 2 M-row table, 3 GB
buffer pool, 60 s per point, 10..290 threads on 32 cores; here MariaDB 10.11 and sysbench 1.0's
oltp_read_only / oltp_read_write Lua tests (the same statement mix as the old oltp test).
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from ..drivers.base import DATA_DIR
from ..errors import ConfigError, InstanceError, ParseError
from ..schematypes import choices, integer, sweep
from .base import Context, Metric, Sample, Workload, metric_family
from .servers import END, lines, require_end, start_server

PORT = 13306
DATADIR = f"{DATA_DIR}/mysql"
SOCKET = "/tmp/isobench-mariadb.sock"
USER = PASSWORD = DB = "sbtest"
TESTS = ("oltp_read_only", "oltp_read_write", "oltp_write_only", "oltp_point_select")
MARK = re.compile(r"^### isobench test=(?P<test>\w+) point threads=(?P<t>\d+) exit=(?P<rc>\d+)$", re.M)
TPS = re.compile(r"^\s*transactions:\s+(\d+)\s+\(([\d.]+) per sec\.\)$", re.M)
LAT = {"avg": re.compile(r"^\s*avg:\s+([\d.]+)$", re.M),
       "p95": re.compile(r"^\s*95th percentile:\s+([\d.]+)$", re.M)}


def _short(test: str) -> str:
    return test.removeprefix("oltp_")


#: per test: its rate and latencies (``{}``: the test's name)
MEMBERS = {"tps": Metric("transactions/s", True, "sysbench {} transactions per second", primary=True),
           "lat_avg": Metric("ms", False, "sysbench {} transaction latency, mean"),
           "lat_p95": Metric("ms", False, "sysbench {} transaction latency, 95th percentile")}


class Mysql(Workload):
    kind = "mysql"
    CATEGORY = "application"
    PARAMS = {
        "tests": choices(TESTS, default=["oltp_read_only", "oltp_read_write"],
                         description="sysbench OLTP tests (the paper's figures: read-only)"),
        "threads": sweep(1, 10000, default=[1, 8],
                         description="sweep of sysbench client threads (the paper: 10..290 on 32 cores)"),
        "seconds": integer(1, 3600, default=1, description="sysbench --time per test and point (the paper: 60)"),
        "tables": integer(1, 1000, default=2, description="sysbench --tables (the paper: 1)"),
        "table_size": integer(1, default=10000, description="rows per table, --table-size (the paper: 2000000, "
                                                             "~0.5 GB)"),
        "buffer_pool_mib": integer(8, default=64, description="innodb_buffer_pool_size in MiB; must hold the tables "
                                                               "(~250 B/row) so that reads are served from memory "
                                                               "(the paper: 3 GB)"),
    }
    METRICS = metric_family({_short(t): t for t in TESTS}, MEMBERS)
    TOOLS = (("mariadbd", "--version"), ("sysbench", "--version"), ("ss", "-V"))
    VERSION_ARGV = ("mariadbd", "--version")

    def version(self, inst) -> str:
        server = super().version(inst)
        client = inst.exec(["sysbench", "--version"], timeout=60).stdout.strip()
        return f"{server}; {client}"

    def server_argv(self, bind: str) -> list[str]:
        return ["mariadbd", "--no-defaults", "--user=root", f"--datadir={DATADIR}", f"--bind-address={bind}",
                f"--port={PORT}", f"--socket={SOCKET}", "--skip-name-resolve", "--skip-log-bin",
                "--default-storage-engine=InnoDB",
                f"--innodb-buffer-pool-size={self.params['buffer_pool_mib']}M",
                "--innodb-flush-log-at-trx-commit=0", "--innodb-flush-method=O_DIRECT",
                "--query-cache-type=0", "--query-cache-size=0", "--max-connections=20020",
                "--max-prepared-stmt-count=1000000", "--performance-schema=OFF"]

    def conn_args(self, host: str, port: int) -> list[str]:
        p = self.params
        return ["--db-driver=mysql", f"--mysql-host={host}", f"--mysql-port={port}", f"--mysql-user={USER}",
                f"--mysql-password={PASSWORD}", f"--mysql-db={DB}", f"--tables={p['tables']}",
                f"--table-size={p['table_size']}"]

    def prepare(self, ctx: Context) -> None:
        inst = ctx.inst
        inst.exec(["mariadb-install-db", "--no-defaults", "--user=root", f"--datadir={DATADIR}",
                   "--skip-test-db", "--skip-name-resolve", "--force", "--auth-root-authentication-method=socket"],
                  timeout=300).check("mariadb-install-db")
        start_server(inst, self.server_argv(inst.bind_address), tag="isobench-mariadb", port=PORT, timeout=120)
        sql = (f"CREATE DATABASE {DB}; CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'; "
               f"GRANT ALL ON {DB}.* TO '{USER}'@'%';")
        inst.exec(["mariadb", f"--socket={SOCKET}", "-uroot", "-e", sql], timeout=60).check("create sbtest user")
        ep = inst.endpoint(PORT)
        p = self.params
        res = ctx.client().exec(["sysbench", "oltp_read_write", *self.conn_args(ep.host, ep.port),
                                 f"--threads={min(p['tables'], 4)}", "prepare"], timeout=7200)
        if res.returncode != 0 or "FATAL" in res.stdout + res.stderr:
            tail = (res.stderr.strip() or res.stdout.strip()).splitlines()[-1:] or [""]
            raise InstanceError(f"sysbench prepare against {ep.host}:{ep.port}: exit {res.returncode}: {tail[0][:300]}")
        rows = inst.exec(["mariadb", f"--socket={SOCKET}", "-uroot", "-N", "-e",
                          f"SELECT SUM(TABLE_ROWS), ROUND(SUM(DATA_LENGTH + INDEX_LENGTH) / 1048576) "
                          f"FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{DB}'"], timeout=120)
        size = (rows.stdout.split() or ["?", "?"])[-1]
        ctx.facts.update(mysql_endpoint=f"{ep.host}:{ep.port}", sysbench_tables=p["tables"],
                         sysbench_table_size=p["table_size"], dataset_mib=size)
        if size.isdigit() and int(size) > 0.9 * p["buffer_pool_mib"]:
            raise ConfigError(f"mysql: the tables take {size} MiB, more than the buffer pool "
                              f"(buffer_pool_mib={p['buffer_pool_mib']}) holds, so reads would hit the disk; "
                              f"raise buffer_pool_mib or lower tables/table_size")

    def argv(self, test: str, threads: int, host: str, port: int) -> list[str]:
        return ["sysbench", test, *self.conn_args(host, port), f"--threads={threads}",
                f"--time={self.params['seconds']}", "--events=0", "--rate=0", "--report-interval=0",
                "--percentile=95", "--histogram=off", "run"]

    def run_iteration(self, ctx: Context) -> str:
        ep, client = ctx.inst.endpoint(PORT), ctx.client()
        parts = []
        for test in self.params["tests"]:
            for t in self.params["threads"]:
                # --time bounds the run; the time limit covers a server that stops answering
                argv = ["timeout", "-k", "5", str(self.params["seconds"] + 60), *self.argv(test, t, ep.host, ep.port)]
                with ctx.point(f"threads={t}", subject=_short(test)):
                    res = client.exec(argv, timeout=self.params["seconds"] + 120)
                parts.append(f"### isobench test={test} point threads={t} exit={res.returncode}\n"
                             f"$ {shlex.join(argv)}\n{lines(res.stdout)}{lines(res.stderr)}")
        return "".join(parts) + END

    @classmethod
    def parse(cls, raw: str, params: dict[str, Any]) -> list[Sample]:
        require_end(cls.kind, raw)
        marks = list(MARK.finditer(raw))
        tests = params.get("tests") or ["oltp_read_only", "oltp_read_write"]
        threads = params.get("threads") or [int(m["t"]) for m in marks]
        want = [(t, n) for t in tests for n in threads]
        found = [(m["test"], int(m["t"])) for m in marks]
        if found != want:
            raise ParseError(f"mysql: expected runs {want}, found {found} (truncated output?)")
        samples = []
        for i, m in enumerate(marks):
            body = raw[m.end():marks[i + 1].start() if i + 1 < len(marks) else len(raw)]
            where = f"mysql {m['test']} threads={m['t']}"
            if int(m["rc"]) != 0 or "FATAL" in body:
                err = re.search(r"^.*FATAL.*$", body, re.M)
                raise ParseError(f"{where}: sysbench failed (exit {m['rc']}) {err[0][:200] if err else ''}")
            tps, avg, p95 = TPS.search(body), LAT["avg"].search(body), LAT["p95"].search(body)
            if not (tps and avg and p95):
                raise ParseError(f"{where}: statistics missing from the output")
            if int(tps[1]) == 0 or float(tps[2]) <= 0 or float(p95[1]) <= 0:
                raise ParseError(f"{where}: no transactions completed")
            s, point = _short(m["test"]), f"threads={m['t']}"
            samples += [Sample(f"{s}_tps", float(tps[2]), point), Sample(f"{s}_lat_avg", float(avg[1]), point),
                        Sample(f"{s}_lat_p95", float(p95[1]), point)]
        return samples

    def describe(self) -> str:
        p = self.params
        return (f"sysbench {','.join(p['tests'])} threads {p['threads']} {p['seconds']} s each, "
                f"{p['tables']} x {p['table_size']} rows, MariaDB buffer pool {p['buffer_pool_mib']} MiB, "
                "server inside, client on the host")
