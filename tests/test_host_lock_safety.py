"""The host lock cannot be redirected: root opens it in a directory only root can write, never
through a symlink, and writes its holder line only into a regular file root owns. Every unsafe
case is one line and changes nothing (no cleanup, the symlink's target untouched).

All cases are built in a scratch directory (ISOBENCH_HOST_LOCK, or HOST_LOCK patched), as a user
would build them in /run/lock on a host without fs.protected_symlinks."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from isobench import pipeline

from conftest import ROOT

USER = 1000
UNSAFE = re.compile(r"^isobench: the host lock (\S+) (.+); remove it \(as root\) if a user made it, and run "
                    r"again \(this run changed nothing\)$")
BUSY = re.compile(r"^isobench: another run is measuring on this host \(pid (\S+), in .+\(this run changed nothing\)$")


@pytest.fixture
def run_as_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    yield
    pipeline.release_host_lock()


@pytest.fixture
def cleanups(monkeypatch):
    calls: list = []
    monkeypatch.setattr(pipeline.drivers, "cleanup_all", lambda paths: calls.append(paths) or [])
    return calls


def cfg(tmp_path: Path) -> SimpleNamespace:
    return SimpleNamespace(paths=SimpleNamespace(root=tmp_path / "state"), cluster=False)


def refused(tmp_path, capsys, cleanups) -> tuple[str, str]:
    """Start a run that must refuse in one line; return (lock path, why)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as ex:
        pipeline.start(cfg(tmp_path))
    assert ex.value.code == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1, err
    m = UNSAFE.match(err[0])
    assert m, err[0]
    assert cleanups == [] and not pipeline._host_lock_fds
    return m.group(1), m.group(2)


def test_a_symlink_at_the_lock_path_is_refused_and_its_target_untouched(tmp_path, monkeypatch, run_as_root,
                                                                        cleanups, capsys):
    lockdir = tmp_path / "run"
    lockdir.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    before = victim.stat()
    (lockdir / "host.lock").symlink_to(victim)
    monkeypatch.setenv("ISOBENCH_HOST_LOCK", str(lockdir / "host.lock"))
    path, why = refused(tmp_path, capsys, cleanups)
    assert path == str(lockdir / "host.lock") and why == "is a symbolic link"
    assert victim.read_text() == "precious\n"
    after = victim.stat()
    assert (after.st_mtime_ns, after.st_size, after.st_mode) == (before.st_mtime_ns, before.st_size, before.st_mode)
    # a dangling symlink is not followed either (O_CREAT would otherwise create its target)
    (lockdir / "host.lock").unlink()
    (lockdir / "host.lock").symlink_to(tmp_path / "created-by-root")
    assert refused(tmp_path, capsys, cleanups)[1] == "is a symbolic link"
    assert not (tmp_path / "created-by-root").exists()


def test_a_symlinked_lock_directory_is_refused(tmp_path, monkeypatch, run_as_root, cleanups, capsys):
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    (tmp_path / "run").symlink_to(target)
    monkeypatch.setenv("ISOBENCH_HOST_LOCK", str(tmp_path / "run" / "host.lock"))
    _, why = refused(tmp_path, capsys, cleanups)
    assert why == f"is not in a directory of its own: {tmp_path / 'run'} is a symbolic link or not a directory"
    assert list(target.iterdir()) == []


@pytest.mark.parametrize("case, expected", [
    ("dir owned by a user", "is in {d}, owned by uid 1000 (not 0)"),
    ("dir group-writable", "is in {d}, which others can write (mode 0770)"),
    ("dir world-writable", "is in {d}, which others can write (mode 1777)"),
    ("file owned by a user", "is owned by uid 1000 (not 0)"),
    ("hard link", "has other hard links"),
    ("fifo", "is not a regular file"),
    ("directory", "cannot be opened: Is a directory"),
])
def test_a_lock_others_could_have_made_is_refused(tmp_path, monkeypatch, run_as_root, cleanups, capsys, case,
                                                  expected):
    if os.getuid() != 0:
        pytest.skip("chown needs root")
    d = tmp_path / "run"
    d.mkdir(mode=0o700)
    lock = d / "host.lock"
    if case == "dir owned by a user":
        os.chown(d, USER, USER)
    elif case == "dir group-writable":
        d.chmod(0o770)
    elif case == "dir world-writable":
        d.chmod(0o1777)
    elif case == "file owned by a user":
        lock.write_text("a user's holder line\n")
        os.chown(lock, USER, USER)
    elif case == "hard link":
        (tmp_path / "victim").write_text("precious\n")
        os.link(tmp_path / "victim", lock)
    elif case == "fifo":
        os.mkfifo(lock)
    elif case == "directory":
        lock.mkdir()
    monkeypatch.setenv("ISOBENCH_HOST_LOCK", str(lock))
    _, why = refused(tmp_path, capsys, cleanups)
    assert why == expected.format(d=d)
    if case == "file owned by a user":
        assert lock.read_text() == "a user's holder line\n"
    if case == "hard link":
        assert (tmp_path / "victim").read_text() == "precious\n"


def test_the_lock_directory_is_made_root_only_and_the_file_0600(tmp_path, monkeypatch, run_as_root, cleanups):
    monkeypatch.delenv("ISOBENCH_HOST_LOCK", raising=False)
    monkeypatch.setattr(pipeline, "HOST_LOCK", str(tmp_path / "isobench" / "host.lock"))
    monkeypatch.setattr(pipeline, "LEGACY_HOST_LOCK", str(tmp_path / "no-legacy.lock"))
    pipeline.start(cfg(tmp_path))
    assert cleanups == [cfg(tmp_path).paths]
    assert (tmp_path / "isobench").stat().st_mode & 0o7777 == 0o700
    assert (tmp_path / "isobench" / "host.lock").stat().st_mode & 0o7777 == 0o600
    assert json.loads((tmp_path / "isobench" / "host.lock").read_text())["pid"] == os.getpid()


HOLD = textwrap.dedent("""
    import fcntl, json, os, sys, time
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, (json.dumps({"pid": os.getpid(), "cwd": "/old-run", "started": "x"}) + "\\n").encode())
    print("locked", flush=True)
    time.sleep(600)
""")


def test_a_run_of_an_older_version_holding_the_old_lock_is_waited_for(tmp_path, monkeypatch, run_as_root,
                                                                         cleanups, capsys):
    """Until every checkout takes the new lock, the old path is held too (read-only, when it is
    root's regular file), so an older checkout's run and this one never measure together."""
    monkeypatch.delenv("ISOBENCH_HOST_LOCK", raising=False)
    monkeypatch.setattr(pipeline, "HOST_LOCK", str(tmp_path / "isobench" / "host.lock"))
    old = tmp_path / "lock" / "isobench.lock"
    old.parent.mkdir()
    monkeypatch.setattr(pipeline, "LEGACY_HOST_LOCK", str(old))
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(old)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        capsys.readouterr()
        with pytest.raises(SystemExit):
            pipeline.start(cfg(tmp_path))
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and BUSY.match(err[0]) and BUSY.match(err[0]).group(1) == str(holder.pid), err
        assert cleanups == [] and not pipeline._host_lock_fds
    finally:
        holder.kill()
        holder.wait(timeout=30)
    pipeline.start(cfg(tmp_path))
    assert cleanups == [cfg(tmp_path).paths]
    assert "/old-run" in old.read_text()            # the old file is only locked, never written


WITHIN = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, sys.argv[2])
    from isobench import pipeline
    pipeline.take_host_lock("/state", within_run=sys.argv[1] == "within")
    print("went ahead")
""")


def test_a_job_of_the_run_holding_the_lock_goes_ahead(tmp_path, monkeypatch, run_as_root, cleanups):
    """`snakemake cleanup` takes the lock in its onstart; its cleanup job (a child of that run)
    goes ahead without taking it again."""
    monkeypatch.setenv("ISOBENCH_HOST_LOCK", str(tmp_path / "run" / "host.lock"))
    pipeline.start(cfg(tmp_path))
    child = subprocess.run([sys.executable, "-c", WITHIN, "within", str(ROOT / "scripts")], capture_output=True,
                           text=True, timeout=60)
    assert child.returncode == 0 and child.stdout == "went ahead\n", child.stderr


def test_the_same_call_refuses_when_the_holder_is_not_its_run(tmp_path, monkeypatch, run_as_root, capsys):
    """The cleanup script started by hand during a run refuses in the same line as a second run."""
    lock = tmp_path / "run" / "host.lock"
    lock.parent.mkdir(mode=0o700)
    monkeypatch.setenv("ISOBENCH_HOST_LOCK", str(lock))
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        capsys.readouterr()
        with pytest.raises(SystemExit):
            pipeline.take_host_lock("/state", within_run=True)
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and BUSY.match(err[0]).group(1) == str(holder.pid), err
        assert not pipeline._host_lock_fds
    finally:
        holder.kill()
        holder.wait(timeout=30)
