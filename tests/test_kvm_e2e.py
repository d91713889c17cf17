"""Real libvirt guests under TCG on this host: boot, commands through the agent, files, a server
reached from the host, the configured resources, and teardown leaving nothing behind, also after
a boot that fails. Needs root and libvirt; the guest boots the pipeline's own image (built into the
state dir on first use, as the pipeline does).

ISOBENCH_BOOT_RUNS=5 also prints start-to-agent times (median of that many quiet starts, 1 and 2 vCPUs).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import statistics
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from isobench import config as configmod
from isobench.cell import run_cell
from isobench.drivers.base import Limits, StatePaths
from isobench.drivers.kvm import KvmDriver
from isobench.drivers.kvm import daemon as libvirtd
from isobench.drivers.kvm import driver as kvm
from isobench.errors import BenchError, InstanceError
from isobench.hostinfo import fingerprint
from isobench.image import ensure_rootfs
from isobench.measure import Measure

from conftest import ROOT, default_rootfs, variant

pytestmark = pytest.mark.e2e

ROOTFS = Path()    # the image root filesystem, set by the paths fixture
BOOT_RUNS = int(os.environ.get("ISOBENCH_BOOT_RUNS", "0"))


def virsh(*args: str) -> str:
    return subprocess.run(["virsh", "-c", libvirtd.URI, *args], capture_output=True, text=True, check=True).stdout


def our_domains() -> list[str]:
    return [n for n in virsh("list", "--all", "--name").split() if n.startswith("isobench-")]


def network_active() -> bool:
    return kvm.NETWORK in virsh("net-list", "--name").split()


def assert_nothing_left(paths: StatePaths, name: str) -> None:
    assert name not in our_domains()
    assert not kvm.instance_dir(paths, name).exists()


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("KVM guests need root")
    if libvirtd.libvirt is None:
        pytest.skip("libvirt-python is not installed")
    global ROOTFS
    ROOTFS = default_rootfs()
    state = StatePaths(tmp_path_factory.mktemp("kvm-state"))
    libvirtd.ensure_running(state.root)
    yield state
    libvirtd.stop_started(state.root)
    shutil.rmtree(state.images)  # the base disk holds ~1 GB; pytest keeps its last temp dirs


def driver(paths: StatePaths, cpus: int = 1, memory_mib: int = 512, **options) -> KvmDriver:
    return KvmDriver("kvm_e2e", {"accel": "tcg", **options}, Limits(cpus, memory_mib), paths,
                     {"rootfs": str(ROOTFS), "key": "e2e"})


@pytest.fixture(scope="module")
def guest(paths):
    inst = driver(paths).start("isobench-kvm_e2e-main")
    yield inst
    inst.stop()


def test_provision_is_cached(paths):
    first = driver(paths).provision()
    assert Path(first["vmlinux"]).stat().st_size > 10 << 20
    assert first["kernel_release"] and "ext4" in " ".join(first["modules"])
    t0 = time.monotonic()
    assert driver(paths).provision() == first
    assert time.monotonic() - t0 < 1


def test_exec_reports_exit_code_stdout_and_stderr(guest):
    res = guest.sh("echo out; echo err >&2; exit 3")
    assert (res.returncode, res.stdout, res.stderr) == (3, "out\n", "err\n")
    assert guest.exec(["cat"], input=b"stdin data").stdout == "stdin data"
    assert guest.exec(["no-such-tool"]).returncode == 127


def test_exec_timeout_is_an_instance_error(guest):
    with pytest.raises(InstanceError, match="timed out after 1s"):
        guest.exec(["sleep", "30"], timeout=1)


def test_data_is_a_writable_virtio_disk(guest):
    res = guest.sh("awk '$2 == \"/data\" {print $1, $3}' /proc/mounts && touch /data/x && rm /data/x").check()
    assert res.stdout.split() == ["/dev/vdb", "ext4"]


def test_copy_in_and_out_keep_the_bytes(guest, tmp_path):
    src = tmp_path / "blob"
    src.write_bytes(os.urandom(4 << 20))
    want = hashlib.sha256(src.read_bytes()).hexdigest()
    guest.copy_in(src, "/data/blob")
    assert guest.exec(["sha256sum", "/data/blob"]).check().stdout.split()[0] == want
    guest.copy_out("/data/blob", tmp_path / "back")
    assert hashlib.sha256((tmp_path / "back").read_bytes()).hexdigest() == want


def test_host_reaches_a_server_in_the_guest(guest):
    guest.spawn(["redis-server", "--bind", guest.bind_address, "--port", "6390", "--save", "",
                 "--protected-mode", "no"], tag="redis")
    ep = guest.endpoint(6390)
    assert ep.host == guest.bind_address
    end = time.monotonic() + 30
    while True:
        try:
            conn = socket.create_connection((ep.host, ep.port), timeout=5)
            break
        except ConnectionRefusedError:
            assert time.monotonic() < end, "redis in the guest never listened"
            time.sleep(0.1)
    with conn:
        conn.sendall(b"PING\r\n")
        assert conn.recv(64) == b"+PONG\r\n"


def test_describe_shows_the_configured_resources(guest):
    seen = guest.describe()
    assert seen["nproc"] == seen["vcpus"] == 1
    assert 0.85 * 512 <= seen["mem_mib"] <= 512
    assert (seen["accel"], seen["tuning"], seen["cpu_mode"]) == ("tcg", "untuned", "default")


def test_stop_leaves_no_domain_overlay_or_network(guest, paths):
    guest.stop()
    assert_nothing_left(paths, guest.name)
    assert not network_active()


def test_tuned_raw_two_vcpus_and_cleanup_stale(paths):
    inst = driver(paths, cpus=2, tuning="tuned", disk="raw").start("isobench-kvm_e2e-tuned")
    try:
        assert inst.describe()["nproc"] == 2
        xml = virsh("dumpxml", inst.name)
        assert "mode='maximum'" in xml and "type='raw' cache='none' io='native'" in xml
        pins = [line.split() for line in virsh("vcpupin", inst.name).splitlines() if line.strip()[:1].isdigit()]
        assert pins == [["0", "0"], ["1", "1"]]
        removed = KvmDriver.cleanup_stale(paths)
        assert f"libvirt domain {inst.name}" in removed and f"libvirt network {kvm.NETWORK}" in removed
        assert_nothing_left(paths, inst.name)
    finally:
        inst.stop()


def test_guest_without_agent_in_time_is_destroyed(paths):
    with pytest.raises(InstanceError, match=r"guest isobench-kvm_e2e-slow did not answer the agent within 1 s "
                                            r"\(accel=tcg\); console log: /"):
        driver(paths, boot_timeout_s=1).start("isobench-kvm_e2e-slow")
    assert_nothing_left(paths, "isobench-kvm_e2e-slow")
    assert not network_active()


def test_guest_that_dies_while_booting_fails_fast(paths, monkeypatch):
    # no such init: the kernel panics, panic=-1 reboots and on_reboot=destroy ends the domain
    monkeypatch.setattr(kvm, "guest_cmdline",
                        lambda ip, subnet, tsc_khz=None: "console=ttyS0 panic=-1 rdinit=/no-such-init")
    t0 = time.monotonic()
    with pytest.raises(InstanceError, match="stopped while booting") as err:
        driver(paths).start("isobench-kvm_e2e-dead")
    assert time.monotonic() - t0 < 30
    assert Path(str(err.value).split("console log: ")[1]).read_text().strip()
    assert_nothing_left(paths, "isobench-kvm_e2e-dead")


def host_busy_seconds() -> float:
    fields = list(map(int, Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]))
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait


def cpu_seconds(pid: int | None) -> float:
    """CPU time of one process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, TypeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(BOOT_RUNS == 0, reason="set ISOBENCH_BOOT_RUNS=5 to measure start-to-agent times")
@pytest.mark.parametrize("cpus", [1, 2])
def test_print_start_to_agent_seconds(paths, cpus):
    """Median of BOOT_RUNS starts during which other processes used under 10% of the host's CPU
    time (TCG boot time follows host load; this host is shared)."""
    kvm_driver = driver(paths, cpus=cpus)
    kvm_driver.provision()  # a first build is not part of a start
    quiet, busy = [], []
    name = "isobench-kvm_e2e-boot"
    for _ in range(6 * BOOT_RUNS):
        daemon = libvirtd.daemon_pid("libvirtd", Path("/run/libvirtd.pid"))
        host0, ours0, daemon0 = host_busy_seconds(), sum(os.times()[:4]), cpu_seconds(daemon)
        t0 = time.monotonic()
        inst = kvm_driver.start(name)
        seconds = time.monotonic() - t0
        qemu = int(Path(f"/run/libvirt/qemu/{name}.pid").read_text())
        others = (host_busy_seconds() - host0 - (sum(os.times()[:4]) - ours0)
                  - (cpu_seconds(daemon) - daemon0) - cpu_seconds(qemu))
        inst.stop()
        (quiet if others < 0.1 * seconds else busy).append(round(seconds, 2))
        if len(quiet) == BOOT_RUNS:
            break
    median = f"{statistics.median(quiet):.2f} s" if quiet else "n/a (the host was never quiet)"
    print(f"\nstart() to agent, cpus={cpus}, TCG: median {median} of {quiet}; "
          f"{len(busy)} starts while the host was busy: {busy}")


def test_guest_killed_mid_cell_fails_that_cell_and_leaves_nothing(tmp_path):
    """SIGKILL of the guest's QEMU while a measured iteration runs: the cell fails with a message
    naming the environment, workload and repetition; no cell.json, no domain, no overlay is left."""
    raw = variant(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()),
                  environments__kvm__accel="tcg", limits={"cpus": 1, "memory_mib": 512},
                  workloads__fio_randread__runtime_s=40, workloads__fio_randread__size_mib=16)
    cfg = configmod.load(raw)
    image = ensure_rootfs(cfg.image_spec(), cfg.paths.images)
    cfg.driver("kvm", image).provision()
    name, out = "isobench-kvm-fio_randread-1", tmp_path / "raw"
    pidfile = kvm.LIBVIRT_RUN_DIR / f"{name}.pid"

    def kill_when_measuring() -> None:
        end = time.monotonic() + 120
        while not pidfile.exists() and time.monotonic() < end:
            time.sleep(0.1)
        time.sleep(10)                      # boot + fio's 16 MiB file are done; the 40 s iteration runs
        os.kill(int(pidfile.read_text()), 9)

    killer = threading.Thread(target=kill_when_measuring)
    killer.start()
    with pytest.raises(BenchError) as err:
        run_cell(cfg.env_spec("kvm"), cfg.workload("fio_randread"), 1, Measure(1, 0), cfg.paths, image, fingerprint(),
                 out)
    killer.join()
    assert "cell kvm/fio_randread/round-1: isobench-kvm-fio_randread-1: the guest is gone" in str(err.value)
    assert not (out / "cell.json").exists()
    assert name not in our_domains()
    assert not kvm.instance_dir(StatePaths(cfg.paths.root), name).exists()
