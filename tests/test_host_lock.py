"""One measurement on a host at a time: a run holds a host-wide lock from onstart to its end, and a
second run (in any working directory) exits in one line before it touches anything; in particular
its removal of leftovers never sees the first run's live containers.

The lock path is a temporary file here (ISOBENCH_HOST_LOCK), so these tests never collide with a
developer's real run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from isobench import pipeline

from conftest import ROOT, default_rootfs

LINE = re.compile(r"^isobench: another run is measuring on this host \(pid (\S+), in (.+), since (\S+)\); "
                  r"wait for it to finish or stop it \(this run changed nothing\)$")

# holds the lock given by ISOBENCH_HOST_LOCK until killed; writes the holder line a run writes
# (unless told not to), then says "locked" on stdout
HOLDER = textwrap.dedent("""
    import fcntl, json, os, sys, time
    fd = os.open(os.environ["ISOBENCH_HOST_LOCK"], os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.ftruncate(fd, 0)
    if sys.argv[1] == "line":
        os.write(fd, (json.dumps({"pid": os.getpid(), "cwd": os.getcwd(), "state_dir": "/nowhere",
                                  "started": "2001-02-03T04:05:06+00:00"}) + "\\n").encode())
    print("locked", flush=True)
    time.sleep(600)
""")


def can_lock(path: Path) -> bool:
    """Whether another process could take the lock now (asked from a child: flock is per open file)."""
    code = ("import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
            "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept BlockingIOError:\n    sys.exit(3)")
    rc = subprocess.run([sys.executable, "-c", code, str(path)], timeout=30).returncode
    assert rc in (0, 3)
    return rc == 0


@pytest.fixture
def lock(tmp_path, monkeypatch):
    path = tmp_path / "run" / "isobench.lock"          # its directory is created on demand
    monkeypatch.setenv("ISOBENCH_HOST_LOCK", str(path))
    monkeypatch.setattr(os, "geteuid", lambda: 0)      # the root check passes without root
    yield path
    pipeline.release_host_lock()


@pytest.fixture
def cleanups(monkeypatch):
    calls: list = []
    monkeypatch.setattr(pipeline.drivers, "cleanup_all", lambda paths: calls.append(paths) or [])
    return calls


def cfg(tmp_path: Path) -> SimpleNamespace:
    return SimpleNamespace(paths=SimpleNamespace(root=tmp_path / "state"), cluster=False)


def hold(lock: Path, cwd: Path, mode: str) -> subprocess.Popen:
    cwd.mkdir(exist_ok=True)
    lock.parent.mkdir(exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, mode], cwd=cwd, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "ISOBENCH_HOST_LOCK": str(lock)})
    assert proc.stdout.readline().strip() == "locked"
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.mark.parametrize("mode", ["line", "bare"])
def test_second_run_exits_in_one_line_before_cleanup(tmp_path, lock, cleanups, capsys, mode):
    """mode "line": the holder wrote its holder line; "bare": it did not (the pid and directory
    then come from /proc/locks)."""
    holder_dir = tmp_path / "other-run"
    holder = hold(lock, holder_dir, mode)
    try:
        capsys.readouterr()
        with pytest.raises(SystemExit) as ex:
            pipeline.start(cfg(tmp_path))
        assert ex.value.code == 1
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1, err
        m = LINE.match(err[0])
        assert m, err[0]
        assert m.group(1) == str(holder.pid)
        assert os.path.realpath(m.group(2)) == os.path.realpath(holder_dir)
        if mode == "line":
            assert m.group(3) == "2001-02-03T04:05:06+00:00"
        assert cleanups == []                             # nothing of the other run was touched
        assert not pipeline._host_lock_fds
    finally:
        stop(holder)

    # the holder is gone (killed: the kernel released its lock): this run goes ahead
    pipeline.start(cfg(tmp_path))
    assert cleanups == [cfg(tmp_path).paths]
    rec = json.loads(lock.read_text().splitlines()[0])
    assert rec["pid"] == os.getpid() and rec["cwd"] == os.getcwd()
    assert rec["state_dir"] == str(tmp_path / "state")
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$", rec["started"])
    assert not can_lock(lock)


def test_lock_is_held_until_finish_and_not_inherited(tmp_path, lock, cleanups, monkeypatch):
    stopped = []
    monkeypatch.setattr(pipeline.drivers, "release_all", lambda paths: stopped.append(paths.root) or [])
    pipeline.start(cfg(tmp_path))
    # a long-lived child of the run (as a daemon it starts) must not keep the host locked
    child = subprocess.Popen(["sleep", "600"], close_fds=False)
    try:
        assert not can_lock(lock)
        pipeline.finish(cfg(tmp_path), success=False, report=str(tmp_path / "none.html"))
        assert stopped == [tmp_path / "state"]              # the drivers' daemons first, then the lock
        assert not pipeline._host_lock_fds
        assert can_lock(lock)
    finally:
        stop(child)


def test_the_default_path_is_the_hosts_lock_dir(monkeypatch):
    monkeypatch.delenv("ISOBENCH_HOST_LOCK", raising=False)
    assert pipeline.host_lock_path() == pipeline.HOST_LOCK == "/run/isobench/host.lock"
    monkeypatch.setattr(pipeline, "HOST_LOCK", "/elsewhere/x.lock")
    assert pipeline.host_lock_path() == "/elsewhere/x.lock"


# -- end to end: two real Snakemake runs in two working directories -----------------------------

TINY = ROOT / "tests" / "configs" / "tiny.yaml"
ENVS = ["native", "lxc_host"]
LXCPATH = Path("/var/lib/isobench/lxc")


def snakemake_cmd(wd: Path) -> list[str]:
    return [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(wd), "--cores", "1",
            "--configfile", str(TINY),
            "--config", f"run={json.dumps({'environments': ENVS, 'workloads': ['compression']})}", "--", "all"]


def live_containers() -> list[str]:
    out = subprocess.run(["lxc-ls", "-P", str(LXCPATH), "--running", "-1"], capture_output=True, text=True)
    return [n for n in out.stdout.split() if n.startswith("isobench-")]


@pytest.mark.e2e
def test_second_snakemake_run_leaves_the_first_alone(tmp_path):
    default_rootfs()            # the image exists before the runs (its first build takes minutes)
    env = {**os.environ, "ISOBENCH_HOST_LOCK": str(tmp_path / "host.lock")}
    first_wd, second_wd = tmp_path / "first", tmp_path / "second"
    first_wd.mkdir()
    second_wd.mkdir()
    first_log = tmp_path / "first.log"
    with open(first_log, "w") as out:
        first = subprocess.Popen(snakemake_cmd(first_wd), stdout=out, stderr=subprocess.STDOUT, env=env,
                                 start_new_session=True)
    try:
        end, seen = time.monotonic() + 300, []
        while time.monotonic() < end and first.poll() is None:
            seen = live_containers()
            if seen or (first_wd / "results" / "raw").exists():
                break
            time.sleep(0.2)
        assert seen or (first_wd / "results" / "raw").exists(), "the first run never started measuring"
        assert first.poll() is None and not can_lock(tmp_path / "host.lock"), \
            f"the first run ended early:\n{first_log.read_text()[-4000:]}"
        assert json.loads((tmp_path / "host.lock").read_text())["pid"] == first.pid

        t0 = time.monotonic()
        second = subprocess.run(snakemake_cmd(second_wd), capture_output=True, text=True, env=env, timeout=60)
        assert second.returncode != 0, f"{second.stderr[-3000:]}\nfirst run:\n{first_log.read_text()[-3000:]}"
        lines = [line for line in second.stderr.splitlines() if LINE.match(line)]
        assert len(lines) == 1, second.stderr[-3000:]
        m = LINE.match(lines[0])
        assert m.group(1) == str(first.pid)
        assert os.path.realpath(m.group(2)) == os.path.realpath(first_wd)
        assert "removed leftover" not in second.stderr
        assert time.monotonic() - t0 < 60
        assert not (second_wd / "results").exists()

        first.wait(timeout=900)
        assert first.returncode == 0, first_log.read_text()[-4000:]
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)        # the run this test started, and its jobs
            first.wait(timeout=30)
    cells = list(first_wd.glob("results/cells/*/*/*.parquet"))
    assert {p.parts[-3] for p in cells} == set(ENVS), cells
    assert can_lock(tmp_path / "host.lock")                 # released with the end of the first run
