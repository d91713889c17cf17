"""Running as root safely (issue 23), the parts that need no host objects: every input that made a
run meaningless or fail late is refused when the config loads, in one line naming the key; a
state_dir that is or contains another software's directory, is on a kernel file system, is
group-writable or absurdly long is refused the same way; limits beyond the host are refused on
this host, and at provisioning on a cluster node."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from isobench import config
from isobench.drivers import base
from isobench.drivers.base import Limits, StatePaths
from isobench.errors import BenchError, ConfigError

from conftest import ROOT, variant

NAN, INF = float("nan"), float("inf")


def one_line(call, key: str) -> str:
    """``call()`` raises a ConfigError of one line starting with ``config: <key>: ``; its text."""
    with pytest.raises(ConfigError) as err:
        call()
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"config: {key}: "), msg
    return msg


CPUS, MEM_MIB = base.host_capacity()


@pytest.mark.parametrize("changes, key, expected", [
    # rounds.min above rounds.max was clamped silently: never an interval
    ({"rounds__min": 10, "rounds__max": 5}, "rounds.min",
     "10 is more than rounds.max (5); a workload gets rounds.min rounds before its precision is checked"),
    ({"rounds__min": 13}, "rounds.min", "13 is more than rounds.max (12)"),
    # a precision target above 100 % or NaN: never met (NaN) or meaningless
    ({"precision__cpu": 150}, "precision.cpu", "150 is greater than the maximum of 100"),
    ({"precision__network": NAN}, "precision.network", "nan is not a number this key can take"),
    ({"precision__cpu": INF}, "precision.cpu", "inf is not a number this key can take"),
    ({"workloads__compression__precision_pct": 150}, "workloads.compression.precision_pct",
     "greater than the maximum of 100"),
    ({"workloads__compression__precision_pct": NAN}, "workloads.compression.precision_pct", "nan is not a number"),
    # sentinel thresholds 0 (every round flagged) or NaN (never flags)
    ({"sentinel__max_steal_pct": 0}, "sentinel.max_steal_pct", "less than or equal to the minimum of 0"),
    ({"sentinel__max_steal_pct": NAN}, "sentinel.max_steal_pct", "nan is not a number"),
    ({"sentinel__max_steal_pct": 101}, "sentinel.max_steal_pct", "greater than the maximum of 100"),
    ({"sentinel__max_canary_change_pct": 0}, "sentinel.max_canary_change_pct", "less than or equal to the minimum"),
    ({"sentinel__max_canary_change_pct": NAN}, "sentinel.max_canary_change_pct", "nan is not a number"),
    # the matrix: native always in, something to compare it with, some workload
    ({"run": {"environments": ["lxc_host", "lxc_nat"]}}, "run.environments",
     "the baseline 'native' is missing; every overhead is measured against it, so every run includes it"),
    ({"run": {"environments": ["native"]}}, "run.environments",
     "only the baseline 'native': nothing to compare it with; add an environment (defined: native,"),
    ({"run": {"environments": []}}, "run.environments", "should be non-empty"),
    ({"run": {"workloads": []}}, "run.workloads", "should be non-empty"),
    # a size fio refuses only at run time
    ({"workloads__fio_randread__bs": "0"}, "workloads.fio_randread.bs", "does not match"),
    ({"workloads__fio_randread__bs": "0k"}, "workloads.fio_randread.bs", "does not match"),
    # limits beyond this host: the cpuset 0..n-1 does not exist, the memory is not there
    ({"limits__cpus": CPUS + 1}, "limits.cpus", f"{CPUS + 1} is more than this host's {CPUS} CPUs"),
    ({"limits__cpus": 64} if CPUS < 64 else {"limits__cpus": 1024}, "limits.cpus", "is more than this host's"),
    ({"limits__memory_mib": MEM_MIB + 1}, "limits.memory_mib",
     f"{MEM_MIB + 1} is more than this host's memory ({MEM_MIB} MiB)"),
])
def test_inputs_that_made_a_run_meaningless_are_refused_in_one_line(default_raw, changes, key, expected):
    msg = one_line(lambda: config.load(variant(default_raw, **changes)), key)
    assert expected in msg, msg


def test_the_good_neighbours_of_those_inputs_still_load(default_raw):
    """What the checks must not refuse: min == max, 100 %, a threshold of 100, native plus one,
    the host's own CPU count and memory, a block size of 1."""
    ok = variant(default_raw, rounds__min=5, rounds__max=5, precision__cpu=100, sentinel__max_steal_pct=100,
                 limits__cpus=CPUS, limits__memory_mib=MEM_MIB, workloads__fio_randread__bs="1",
                 run={"environments": ["native", "lxc_host"], "workloads": ["compression"]})
    cfg = config.load(ok)
    assert cfg.round_policy("compression").min_rounds == 5 and cfg.limits.cpus == CPUS


def test_limits_are_not_checked_against_the_submit_host_on_a_cluster(default_raw):
    """On a cluster this machine only submits: the nodes' capacity is checked when they provision."""
    raw = variant(default_raw, limits__cpus=CPUS + 1, hosts=[{"name": "node1"}])
    assert config.load(raw).limits.cpus == CPUS + 1


@pytest.mark.parametrize("kind", ["lxc", "kvm"])
def test_limits_beyond_the_node_fail_at_provisioning_in_one_line(kind, tmp_path):
    from isobench.drivers import KINDS
    drv = KINDS[kind]("big", {"accel": "tcg"} if kind == "kvm" else {}, Limits(CPUS + 1, 512),
                      StatePaths(tmp_path), {"rootfs": str(tmp_path), "key": "k"})
    with pytest.raises(BenchError) as err:
        drv.provision()
    assert str(err.value) == f"environment big: limits.cpus: {CPUS + 1} is more than this host's {CPUS} CPUs"


# -- state_dir ---------------------------------------------------------------------------------

@pytest.mark.parametrize("state_dir, expected", [
    ("/var/lib", "/var/lib is a directory other software owns"),
    ("/var/lib/lxc", "/var/lib/lxc is a directory other software owns"),
    ("/var/lib/libvirt", "/var/lib/libvirt is a directory other software owns"),
    ("/var", "/var is a directory other software owns"),
    ("/usr", "/usr is a directory other software owns"),
    ("/etc", "/etc is a directory other software owns"),
    ("/run", "/run is a directory other software owns"),
    ("/sys", "/sys is a directory other software owns"),
    ("/proc", "/proc is a directory other software owns"),
    ("/proc/isobench", "/proc/isobench is on a proc file system (mounted at or above /proc)"),
    ("/sys/isobench", "/sys/isobench is on a sysfs file system"),
    ("/sys/fs/cgroup/isobench", "is on a tmpfs" if config.mount_fstype("/sys/fs/cgroup") == "tmpfs" else "cgroup"),
    ("/" + "x" * 4999, "5000 characters long ('/xxxxxxxxx"),
])
def test_a_state_dir_of_other_software_or_a_kernel_fs_is_refused(default_raw, state_dir, expected):
    if state_dir == "/sys/fs/cgroup/isobench" and config.mount_fstype("/sys/fs/cgroup") not in config.UNFIT_FS:
        state_dir, expected = "/sys/fs/cgroup/cpu/isobench", "is on a cgroup file system"
    msg = one_line(lambda: config.load(variant(default_raw, state_dir=state_dir)), "state_dir")
    assert expected in msg, msg


def test_a_state_dir_containing_another_softwares_directory_is_refused(tmp_path):
    """Checked on the resolved path with an injected file system: /var/lib reached as /srv/x."""
    from types import SimpleNamespace

    def lstat(p):
        if p == "/srv/x":
            return SimpleNamespace(st_uid=0, st_mode=0o120777, st_gid=0)      # a symlink
        return SimpleNamespace(st_uid=0, st_mode=0o40755, st_gid=0)
    msg = one_line(lambda: config._check_state_dir("/srv/x", lstat=lstat, readlink=lambda p: "/var",
                                                   fstype=lambda p: "ext4"), "state_dir")
    assert "/srv/x (that is /var) is a directory other software owns" in msg, msg
    msg = one_line(lambda: config._check_state_dir("/srv", lstat=lstat, fstype=lambda p: "ext4"), "state_dir")
    assert "/srv is a directory other software owns" in msg
    # contains: a directory above one of them
    config.OWNED_ELSEWHERE  # noqa: B018 (the list the check reads)
    msg = one_line(lambda: config._check_state_dir("/var", lstat=lstat, fstype=lambda p: "ext4"), "state_dir")
    assert "is a directory other software owns" in msg
    assert config._check_state_dir("/srv/isobench", lstat=lstat, fstype=lambda p: "ext4") is None


def test_a_state_dir_on_overlayfs_is_refused():
    msg = one_line(lambda: config._check_state_dir("/var/lib/isobench", fstype=lambda p: "overlay"), "state_dir")
    assert "is on a overlay file system" in msg or "is on an overlay file system" in msg, msg


@pytest.mark.parametrize("where", ["itself", "ancestor"])
def test_a_group_writable_state_dir_is_refused(tmp_path, where):
    if os.geteuid() != 0:
        pytest.skip("chown needs root")
    os.chmod(tmp_path, 0o755)
    d = tmp_path / "shared"
    d.mkdir()
    os.chown(d, 0, 50)
    d.chmod(0o775)
    path = d if where == "itself" else d / "state"
    msg = one_line(lambda: config._check_state_dir(str(path), top=str(tmp_path)), "state_dir")
    assert f"{d} is group-writable (mode 0775, group 50)" in msg, msg
    d.chmod(0o755)
    assert config._check_state_dir(str(path), top=str(tmp_path)) is None


def test_the_default_state_dir_and_a_project_directory_under_var_lib_are_fine():
    config._check_state_dir("/var/lib/isobench")
    config._check_state_dir("/srv/isobench")
    config._check_state_dir("/var/lib/libvirt-isobench")      # a name that merely starts alike


# -- ownership: what cleanup recognises as this state_dir's, without touching the host ---------------

def test_a_domain_is_ours_by_its_marker_or_the_old_name_with_a_disk_under_state_dir():
    from isobench.drivers.kvm.domain import domain_xml, owner_of
    from isobench.drivers.kvm.driver import is_ours

    paths = StatePaths(Path("/var/lib/isobench"))

    def xml(name, state_dir, disk_dir="/var/lib/isobench/instances"):
        return domain_xml(name=name, accel="tcg", tuning="untuned", disk="qcow2", cpus=1, memory_mib=512,
                          kernel="/k", initrd="/i", cmdline="", root_disk=Path(f"{disk_dir}/{name}.kvm/root.qcow2"),
                          data_disk=Path(f"{disk_dir}/{name}.kvm/data.qcow2"), console_log=Path("/c"),
                          mac="00:16:3e:00:00:01", vhost=False, state_dir=state_dir)

    assert owner_of(xml("isobench-x-1", "/var/lib/isobench")) == "/var/lib/isobench"
    assert is_ours(xml("isobench-x-1", "/var/lib/isobench"), "isobench-x-1", paths)
    assert is_ours(xml("any-name", "/var/lib/isobench"), "any-name", paths)            # the marker decides
    assert not is_ours(xml("isobench-x-1", "/srv/other"), "isobench-x-1", paths)      # another state_dir's
    # made before markers: the old name and a disk under state_dir
    assert is_ours(xml("isobench-x-1", None), "isobench-x-1", paths)
    # a user's look-alike: the name alone is not enough
    assert not is_ours(xml("isobench-web", None, "/srv/vms"), "isobench-web", paths)
    assert not is_ours(xml("web", None), "web", paths)
    assert not is_ours(xml("isobench-web", None, "/var/lib/isobench-web"), "isobench-web", paths)


def test_a_container_is_ours_by_its_config_marker_or_the_old_name_with_a_rootfs_under_state_dir(tmp_path):
    from isobench.drivers.lxc import OWNER_LINE, is_ours

    paths = StatePaths(tmp_path / "state")
    lxcpath = paths.root / "lxc"

    def make(name, first_line, rootfs):
        (lxcpath / name).mkdir(parents=True)
        (lxcpath / name / "config").write_text(f"{first_line}\nlxc.rootfs.path = {rootfs}\n")

    make("isobench-a-1", f"{OWNER_LINE}isobench:{paths.root}", "overlay:/img:/elsewhere/delta0")
    make("isobench-b-1", "lxc.arch = x86_64", f"overlay:/img:{lxcpath}/isobench-b-1/delta0")   # old config
    make("isobench-web", "lxc.arch = x86_64", "dir:/srv/web/rootfs")                         # a look-alike
    make("isobench-c-1", f"{OWNER_LINE}isobench:/srv/other", f"overlay:/img:{lxcpath}/isobench-c-1/delta0")
    (lxcpath / "isobench-half").mkdir()                                                     # no config yet
    assert [n for n in sorted(os.listdir(lxcpath)) if is_ours(lxcpath, n, paths)] == \
        ["isobench-a-1", "isobench-b-1", "isobench-half"]


def test_native_cleanup_removes_only_marked_or_old_instance_directories(tmp_path):
    from isobench.drivers.base import mark_dir
    from isobench.drivers.native import NativeDriver

    paths = StatePaths(tmp_path / "state")
    for name in ("isobench-marked", "isobench-old", "isobench-foreign", "isobench-k-1.kvm", "other"):
        (paths.instances / name).mkdir(parents=True)
    mark_dir(paths.instances / "isobench-marked", paths)
    (paths.instances / "isobench-old" / "upper").mkdir()                 # an old native instance
    (paths.instances / "isobench-foreign" / "notes.txt").write_text("mine")
    mark_dir(paths.instances / "isobench-k-1.kvm", paths)               # KVM's: its driver removes it
    removed = NativeDriver.cleanup_stale(paths)
    assert removed == ["native instance isobench-marked", "native instance isobench-old"]
    assert sorted(os.listdir(paths.instances)) == ["isobench-foreign", "isobench-k-1.kvm", "other"]


def test_a_qemu_log_is_ours_only_when_it_names_a_disk_under_state_dir(tmp_path):
    from isobench.drivers.kvm.driver import qemu_log_is_ours

    paths = StatePaths(Path("/var/lib/isobench"))
    ours, theirs = tmp_path / "isobench-a-1.log", tmp_path / "isobench-web.log"
    ours.write_text('-blockdev {"driver":"file","filename":"/var/lib/isobench/instances/isobench-a-1.kvm/root.qcow2"}')
    theirs.write_text('-blockdev {"driver":"file","filename":"/srv/vms/web.qcow2"}')
    assert qemu_log_is_ours(ours, paths) and not qemu_log_is_ours(theirs, paths)


# -- scripts/cleanup.py: the host lock and the state dir, as a run --------------------------------

CLEANUP = [sys.executable, str(ROOT / "scripts" / "cleanup.py")]


@pytest.mark.parametrize("state_dir, expected", [
    ("/var/lib", "isobench: --state-dir: /var/lib is a directory other software owns"),
    ("/var/lib/libvirt", "isobench: --state-dir: /var/lib/libvirt is a directory other software owns"),
    ("/tmp/isobench", "isobench: --state-dir: /tmp is world-writable"),
    ("relative", "isobench: --state-dir: 'relative' is not an absolute path"),
    ("/proc/isobench", "isobench: --state-dir: /proc/isobench is on a proc file system"),
])
def test_cleanup_script_checks_its_state_dir_as_the_config_does(state_dir, expected, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("cleanup runs as root")
    proc = subprocess.run([*CLEANUP, "--state-dir", state_dir, "--images"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "ISOBENCH_HOST_LOCK": str(tmp_path / "run" / "lock")})
    assert proc.returncode == 1 and proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith(expected), proc.stderr
    assert not (tmp_path / "run").exists()              # refused before it even took the lock


HOLD = textwrap.dedent("""
    import fcntl, json, os, sys, time
    os.makedirs(os.path.dirname(sys.argv[1]), mode=0o700, exist_ok=True)
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, (json.dumps({"pid": os.getpid(), "cwd": "/a-run", "started": "then"}) + "\\n").encode())
    print("locked", flush=True)
    time.sleep(600)
""")


def test_cleanup_script_refuses_during_a_run_in_the_line_a_second_run_gets(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("cleanup runs as root")
    lock = tmp_path / "run" / "lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        proc = subprocess.run([*CLEANUP, "--state-dir", "/var/lib/isobench-not-made"], capture_output=True,
                              text=True, timeout=120, env={**os.environ, "ISOBENCH_HOST_LOCK": str(lock)})
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == (f"isobench: another run is measuring on this host (pid {holder.pid}, in /a-run, since "
                           f"then); wait for it to finish or stop it (this run changed nothing)\n")
    assert not Path("/var/lib/isobench-not-made").exists()


def test_cleanup_images_removes_only_the_projects_entries(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    import cleanup

    images = tmp_path / "images"
    for d in ("rootfs-abc/rootfs", ".rootfs-abc.partial", "kvm-def", ".kvm-def.x.partial", "pool/disk"):
        (images / d).mkdir(parents=True)
    for f in ("rootfs-abc.json", ".rootfs-abc.lock", "someone-elses.qcow2"):
        (images / f).write_text("x")
    removed = cleanup.remove_images(images)
    assert len(removed) == 6
    assert sorted(os.listdir(images)) == ["pool", "someone-elses.qcow2"]
