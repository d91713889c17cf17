"""Faults that really happen: a container killed mid-round, Snakemake killed mid-run, a full disk,
a tool missing from the image, not being root. Each must cost at most the round that was running
(its cells are measured together or not at all), leave nothing behind on the host, and say what
went wrong in one line."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from isobench import cell, image
from isobench.drivers import KINDS as DRIVERS
from isobench.drivers.base import EnvSpec, Limits, StatePaths
from isobench.errors import BenchError, InstanceError
from isobench.workloads import KINDS as WORKLOADS
from isobench.workloads.compression import Compression

from conftest import ROOT, default_rootfs
from leftovers import host_leftovers

pytestmark = pytest.mark.e2e

FAULTS = ROOT / "tests" / "configs" / "faults.yaml"
STATE = Path("/var/lib/isobench")
LXCPATH = STATE / "lxc"
SLOW_CT = "isobench-lxc_bridge-fio_slow-1"
CELLS = ["results/cells/native/compression/round-1.parquet", "results/cells/native/fio_slow/round-1.parquet",
         "results/cells/lxc_bridge/compression/round-1.parquet", "results/cells/lxc_bridge/fio_slow/round-1.parquet"]


def snakemake_cmd(wd: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(wd), "--cores", "1",
            *args, "--configfile", str(FAULTS), "--", *CELLS]


def wait_for(pred, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def container_pid(name: str) -> int | None:
    out = subprocess.run(["lxc-info", "-P", str(LXCPATH), "-n", name, "-p", "-H"], capture_output=True, text=True)
    return int(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip().isdigit() else None


def measuring(wd: Path) -> bool:
    log = wd / "results/logs/run_round/fio_slow/round-1.log"
    return log.exists() and "lxc_bridge/fio_slow/round-1: preparing" in log.read_text() \
        and container_pid(SLOW_CT) is not None


def project_leftovers() -> list[str]:
    return host_leftovers()


def test_container_killed_mid_round_fails_only_that_round(tmp_path):
    proc = subprocess.Popen(snakemake_cmd(tmp_path, "--keep-going"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: measuring(tmp_path) or proc.poll() is not None, 300, "the slow LXC cell to start measuring")
        time.sleep(2)
        os.kill(container_pid(SLOW_CT), signal.SIGKILL)        # the container's init
        out, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    log = (tmp_path / "results/logs/run_round/fio_slow/round-1.log").read_text()
    assert "cell lxc_bridge/fio_slow/round-1" in log and "died" in log, log[-2000:]
    # --keep-going: every other round completed; the failed round keeps none of its cells
    slow = {"results/cells/lxc_bridge/fio_slow/round-1.parquet", "results/cells/native/fio_slow/round-1.parquet"}
    done = {c for c in CELLS if (tmp_path / c).exists()}
    assert done == set(CELLS) - slow
    assert not (tmp_path / "results/raw/fio_slow/round-1").exists()   # no half result
    assert project_leftovers() == []
    # the next run re-measures only the failed round
    dry = subprocess.run(snakemake_cmd(tmp_path, "-n"), capture_output=True, text=True)
    jobs = [line.split()[-1] for line in dry.stdout.splitlines() if line.strip().startswith("output:")]
    assert sorted(jobs) == sorted(["results/raw/fio_slow/round-1", *slow]), dry.stdout


def test_snakemake_killed_mid_run_is_recovered_by_the_next_run(tmp_path):
    out = open(tmp_path / "killed-run.log", "w")  # noqa: SIM115  (the killed run writes to it until the end)
    proc = subprocess.Popen(snakemake_cmd(tmp_path), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: measuring(tmp_path) or proc.poll() is not None, 300, "the slow LXC cell to start measuring")
        assert proc.poll() is None, (tmp_path / "killed-run.log").read_text()[-3000:]
        os.killpg(proc.pid, signal.SIGKILL)                      # Snakemake and its job, at once
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert f"container {SLOW_CT}" in project_leftovers()                      # the dead run left its container
    rerun = subprocess.run(snakemake_cmd(tmp_path), capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"removed leftover container {SLOW_CT}" in rerun.stderr
    assert all((tmp_path / c).exists() for c in CELLS)
    assert project_leftovers() == []


def test_cleanup_removes_project_objects_and_nothing_else(tmp_path):
    rootfs = default_rootfs()
    paths = StatePaths(STATE)
    img = {"rootfs": str(rootfs)}
    lxc = DRIVERS["lxc"]("t", {"net": "nat"}, Limits(1, 512), paths, img).start("isobench-cleanup-lxc")
    lxc.endpoint(7777)                                          # installs a DNAT rule
    DRIVERS["native"]("t", {}, Limits(1, 512), paths, img).start("isobench-cleanup-native")
    subprocess.run(["ip", "link", "add", "keepme0", "type", "bridge"], check=True)   # not ours
    try:
        out = subprocess.run([sys.executable, str(ROOT / "scripts" / "cleanup.py")], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert "container isobench-cleanup-lxc" in out.stdout
        assert project_leftovers() == []
        rules = subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True, text=True).stdout
        assert "ISOBENCH" not in rules
        assert Path("/sys/class/net/keepme0").exists()
        assert rootfs.exists()                                  # the image cache is kept
    finally:
        subprocess.run(["ip", "link", "del", "keepme0"])


def test_tool_missing_from_image_is_one_clear_line(tmp_path, monkeypatch):
    class NoTool(Compression):
        kind = "notool"
        TOOLS = (("isobench-no-such-tool", "--version"),)
    monkeypatch.setitem(WORKLOADS, "notool", NoTool)
    rootfs = default_rootfs()
    with pytest.raises(InstanceError) as err:
        cell.warmup(EnvSpec("native", "native", {}), [NoTool("w", {})], StatePaths(STATE), {"rootfs": str(rootfs)},
                    tmp_path / "w.json")
    assert "isobench-no-such-tool" in str(err.value) and "image.packages" in str(err.value)
    assert not (tmp_path / "w.json").exists()
    assert project_leftovers() == []


def test_full_disk_during_image_build_is_one_clear_line(tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(small)], check=True)
    try:
        spec = {"suite": "bookworm", "mirror": "http://deb.debian.org/debian", "packages": ["fio"]}
        with pytest.raises(BenchError, match="disk full") as err:
            image.ensure_rootfs(spec, small / "images", timeout=600)
        assert "\n" not in str(err.value)
        assert not list((small / "images").glob("rootfs-*"))     # nothing that looks like an image
    finally:
        subprocess.run(["umount", "-l", str(small)])


def test_not_root_is_one_clear_line():
    wd = Path(tempfile.mkdtemp(prefix="isobench-nonroot-", dir="/tmp"))   # pytest's tmp is root-only
    subprocess.run(["chown", "nobody", str(wd)], check=True)
    env = {"HOME": str(wd), "XDG_CACHE_HOME": str(wd / ".cache"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-m",
                           "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(wd), "--cores", "1",
                           "results/provision/workloads.json"], capture_output=True, text=True, env=env)
    assert proc.returncode != 0
    assert "isobench: must run as root" in proc.stderr
    assert not (wd / "results").exists()
    shutil.rmtree(wd)


def test_missing_lxc_tools_is_one_clear_line_per_environment(tmp_path, default_raw):
    """A host without the lxc package: planning still works (so does `snakemake build_report` of old
    results), and every LXC environment is named in one line saying what to install and that its jobs
    fail (an installation problem is an error, not a skip)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # a PATH with a shell and no lxc-* tools (which: the SLURM executor plugin runs it when it loads)
    for tool in ("bash", "sh", "which"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    wd = tmp_path / "wd"
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(wd),
                           "--cores", "1", "-n"], capture_output=True, text=True,
                          env={"PATH": str(bin_dir), "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    lxc = [e for e, spec in default_raw["environments"].items() if spec["driver"] == "lxc"]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("isobench:") and "lxc" in ln]
    assert lines == [f"isobench: environment {e} cannot run here, and the config asks for it by name: lxc tools "
                     f"not found (lxc-start): install the 'lxc' package (./install.sh does) (its jobs fail)"
                     for e in lxc]
    assert "provision_env" in proc.stdout and not (wd / "results").exists()
