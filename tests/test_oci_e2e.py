"""Real podman containers (runc) and gVisor sandboxes (runsc, ptrace) on the pipeline's image: what
an instance has (commands, files, limits read back from the host, its host name, /dev/shm, /data
on a volume or the layered filesystem), servers reached through NAT on a host port of their own
per instance, and teardown leaving no labelled container, network, sandbox, conmon, netavark chain
or ip_forward change behind. ``test_cell`` runs every default workload's smallest cell
(tests/configs/oci_tiny.yaml) through the cell runner on each configuration: run it targeted,
e.g. ``-k "test_cell and docker_nat"`` (about a minute per environment here)."""

from __future__ import annotations

import ipaddress
import os
import socket
import time
from pathlib import Path

import pytest
import yaml

from isobench import config as configmod
from isobench.cell import run_cell
from isobench.collect import cell_rows
from isobench.drivers import StatePaths, oci
from isobench.errors import InstanceError
from isobench.hostinfo import fingerprint
from isobench.image import ensure_rootfs
from isobench.measure import Measure

from conftest import ROOT

pytestmark = pytest.mark.e2e

ENVS = ["docker_nat", "docker_host", "docker_volume", "gvisor"]
WORKLOADS = ["compression", "fio_randread", "linpack", "stream", "randomaccess", "net_bandwidth", "net_latency",
             "redis", "mysql"]


def merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "workloads" \
            else v
    return out


@pytest.fixture(scope="module")
def cfg():
    if os.geteuid() != 0:
        pytest.skip("rootful podman needs root")
    raw = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg = configmod.load(merged(raw, yaml.safe_load((ROOT / "tests" / "configs" / "oci_tiny.yaml").read_text())))
    for env in ENVS:
        avail = cfg.availability(env)
        if not avail.available:
            pytest.skip(f"{env}: {avail.reason}")
    return cfg


@pytest.fixture(scope="module")
def image(cfg):
    return ensure_rootfs(cfg.image_spec(), cfg.paths.images)


def engine(cfg) -> oci.Engine:
    return oci.Engine(StatePaths(cfg.paths.root))


@pytest.fixture(scope="module", autouse=True)
def host_before(cfg):
    """After every instance of this module is gone (this teardown runs last): no labelled container
    or network, no runsc sandbox or conmon of this state directory, no bridge or instance
    directory, ip_forward and netavark's chains as before."""
    before = {"ip_forward": oci.IP_FORWARD.read_text(), "netavark": oci.netavark_chains_exist()}
    yield before
    e = engine(cfg)
    assert e.labelled("ps") == [] and e.labelled("network") == []
    assert oci.runsc_sandboxes(e) == [] and oci.conmon_pids(e) == []
    assert not Path("/sys/class/net/isobench2").exists() and not Path("/sys/class/net/isobench3").exists()
    assert oci.IP_FORWARD.read_text() == before["ip_forward"]
    assert oci.netavark_chains_exist() == before["netavark"]
    assert oci.NO_FORWARD not in oci._ipt("-S", "FORWARD").stdout.decode()
    assert not list(e.instances.glob("isobench-*"))


@pytest.fixture(scope="module", params=ENVS)
def instance(cfg, image, request, host_before):
    driver = cfg.driver(request.param, image)
    driver.provision()
    with driver.start(f"isobench-{request.param}-basics") as inst:
        yield driver, inst


def test_exec_passes_exit_code_output_and_input(instance):
    _, inst = instance
    res = inst.sh("echo out; echo err >&2; exit 3")
    assert (res.returncode, res.stdout, res.stderr) == (3, "out\n", "err\n")
    assert inst.exec(["cat"], input=b"stdin data").stdout == "stdin data"
    assert inst.exec(["no-such-tool"]).returncode == 127


def test_limits_are_read_back_and_seen_inside(instance):
    driver, inst = instance
    seen = inst.describe()
    driver.check_resources(seen)
    assert seen["nproc"] == driver.limits.cpus
    assert seen["cgroup_cpuset"] == driver.limits.cpuset()
    assert int(seen["cgroup_memory"]) == driver.limits.memory_mib << 20
    assert inst.cpu_seconds() is not None and inst.cpu_seconds() > 0


def test_memory_limit_kills_what_exceeds_it(instance):
    driver, inst = instance
    if driver.kind == "gvisor":
        pytest.skip("in gVisor the host's OOM killer would take the whole sandbox (its Sentry)")
    # tail holds a line of zeros (no newline) in memory: more than the limit
    res = inst.sh(f"head -c {driver.limits.memory_mib + 256}M /dev/zero | tail >/dev/null", timeout=120)
    assert res.returncode != 0


def test_host_name_shm_and_data(instance):
    driver, inst = instance
    assert inst.sh("getent hosts $(hostname)").stdout.split()[0] == "127.0.1.1"
    assert inst.sh("stat -f -c %T /dev/shm").stdout.strip() == "tmpfs"
    inst.sh("echo x > /data/probe && rm /data/probe").check()
    upper = driver.engine.instances / inst.name / "upper" / "data"
    inst.sh("echo layered > /data/where").check()
    if driver.option("storage") == "volume":
        assert (driver.engine.instances / inst.name / "volume" / "where").read_text() == "layered\n"
        assert not (upper / "where").exists()
    else:
        assert (upper / "where").read_text() == "layered\n"


def wait_connect(host: str, port: int) -> socket.socket:
    end = time.monotonic() + 30
    while True:
        try:
            return socket.create_connection((host, port), timeout=5)
        except OSError:
            assert time.monotonic() < end, f"nothing answered on {host}:{port}"
            time.sleep(0.1)


def test_host_reaches_a_server_inside(instance):
    driver, inst = instance
    port = 16379                                     # a served port (redis's): NAT publishes it
    inst.spawn(["redis-server", "--bind", inst.bind_address, "--port", str(port), "--save", "",
                "--protected-mode", "no"], tag="redis")
    ep = inst.endpoint(port)
    net = driver.option("net")
    if net == "nat":
        assert ep.host == str(ipaddress.ip_network(driver.subnet)[1])
        assert ep.port != port and oci.HOST_PORTS[0] <= ep.port < oci.HOST_PORTS[1]
    else:
        assert (ep.host, ep.port) == ("127.0.0.1", port)
    with wait_connect(ep.host, ep.port) as conn:
        conn.sendall(b"PING\r\n")
        assert conn.recv(64) == b"+PONG\r\n"
    if net != "host":
        # no forwarding to or from the outside, ahead of netavark's accepts
        first = [r for r in oci._ipt("-S", "FORWARD").stdout.decode().splitlines() if r.startswith("-A")][:2]
        assert all(oci.NO_FORWARD in r and r.endswith("-j DROP") and driver.subnet in r for r in first), first


def test_two_nat_instances_alive_at_once_get_their_own_host_ports(cfg, image):
    driver = cfg.driver("docker_nat", image)
    with driver.start("isobench-docker_nat-a") as a, driver.start("isobench-docker_nat-b") as b:
        ea, eb = a.endpoint(16379), b.endpoint(16379)
        assert ea.port != eb.port and a.bind_address != b.bind_address
        for inst in (a, b):
            inst.spawn(["redis-server", "--bind", inst.bind_address, "--port", "16379", "--save", "",
                        "--protected-mode", "no"], tag="redis")
        for inst, ep in ((a, ea), (b, eb)):
            inst.sh(f"redis-cli -h {inst.bind_address} -p 16379 set who {inst.name}").check()
            with wait_connect(ep.host, ep.port) as conn:
                conn.sendall(b"GET who\r\n")
                assert inst.name.encode() in conn.recv(128)


def test_a_failed_start_leaves_nothing(cfg, image, monkeypatch):
    driver = cfg.driver("docker_nat", image)
    monkeypatch.setattr(oci, "limit_args", lambda limits: ["--cpuset-cpus", "0-63"])
    with pytest.raises(InstanceError, match="podman run"):
        driver.start("isobench-docker_nat-broken")
    assert "isobench-docker_nat-broken" not in engine(cfg).labelled("ps")
    assert not (driver.engine.instances / "isobench-docker_nat-broken").exists()
    assert oci.conmon_pids(engine(cfg), "isobench-docker_nat-broken") == []


#: what Debian 12's runsc (20221219, ptrace, host netstack) cannot run here, measured on this host
#: (kernel 6.18): each an xfail that fails the test once it runs (strict), except those in GVISOR_FLAKY
GVISOR_CANNOT = {
    "compression": "statx(2) fails with EINVAL in this gVisor: coreutils' stat cannot size the corpus",
    "linpack": "hwloc finds no /sys/devices/system/cpu in this gVisor (statx EINVAL): Open MPI's orte_init aborts",
    "randomaccess": "hwloc finds no /sys/devices/system/cpu in this gVisor (statx EINVAL): Open MPI's orte_init "
                    "aborts",
    "net_bandwidth": "iperf3's control connection fails in this gVisor (host netstack): 'unable to send control "
                     "message: Broken pipe'",
    "net_latency": "this gVisor's host netstack lists no UDP socket (/proc/net/udp empty, no sock_diag): the UDP "
                   "server is never seen listening",
    "mysql": "mariadb-install-db aborts in this gVisor",
}

#: failures seen in some runs and not in others (CI at d35e818: net_bandwidth passed once): not strict
GVISOR_FLAKY = {"net_bandwidth"}


def cell_params():
    for env in ENVS:
        for workload in WORKLOADS:
            why = GVISOR_CANNOT.get(workload) if env == "gvisor" else None
            strict = workload not in GVISOR_FLAKY
            yield pytest.param(env, workload, id=f"{workload}-{env}",
                               marks=[pytest.mark.xfail(reason=why, strict=strict)] if why else [])


@pytest.mark.parametrize("env, workload", list(cell_params()))
def test_cell(cfg, image, tmp_path, env, workload):
    """The default workload's smallest cell on this configuration: every value finite and positive."""
    out = tmp_path / "raw"
    run_cell(cfg.env_spec(env), cfg.workload(workload), 1, Measure(1, 0), cfg.paths, image, fingerprint(), out)
    rows = [r for r in cell_rows(out) if not r["warmup"]]
    assert rows and all(r["value"] == r["value"] and r["value"] >= 0 for r in rows), rows
    assert not [n for n in engine(cfg).labelled("ps") if n.startswith(f"isobench-{env}-{workload}")]
