"""Isolation and hygiene of what the pipeline leaves on disk: no secrets in the image, nothing
world-writable, and DNAT rules that exist only while their container runs."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from isobench.drivers import KINDS as DRIVERS
from isobench.drivers.base import Limits, StatePaths
from isobench.drivers.hostnet import loopback_for
from isobench.workloads import KINDS as WORKLOADS
from isobench.workloads.base import Context

from conftest import default_rootfs

STATE = Path("/var/lib/isobench")
pytestmark = pytest.mark.e2e


def image_root() -> Path:
    return default_rootfs()


def test_image_has_root_locked_and_no_keys():
    root = image_root()
    shadow = {line.split(":")[0]: line.split(":")[1] for line in (root / "etc/shadow").read_text().splitlines()}
    assert shadow["root"].startswith("!"), "root must be locked in the image"
    assert all(pw in ("*", "!", "!*") or pw.startswith("!") for pw in shadow.values()), "an account has a password"
    assert not list(root.glob("etc/ssh/ssh_host_*")) and not list(root.glob("root/.ssh/*"))


def test_state_dir_and_image_are_not_world_writable():
    root = image_root()
    for p in (STATE, STATE / "images", root, root / "usr" / "bin", root / "etc"):
        assert not p.stat().st_mode & stat.S_IWOTH, f"{p} is world-writable"


def test_nat_rules_live_only_as_long_as_their_container():
    paths = StatePaths(STATE)
    drv = DRIVERS["lxc"]("t", {"net": "nat"}, Limits(1, 512), paths, {"rootfs": str(image_root())})
    with drv.start("isobench-iso-nat") as inst:
        ep = inst.endpoint(6399)
        rules = subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True, text=True).stdout
        assert f"--to-destination {inst.ip}:6399" in rules
        assert ep.host != inst.ip                         # the client goes through the host address
        assert "MASQUERADE" not in rules.split("ISOBENCH")[-1]   # no NAT to the outside
    rules = subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True, text=True).stdout
    assert "ISOBENCH" not in rules
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() in ("0", "1")


def test_bridge_is_private():
    """The bridge the pipeline creates has a static address, no DHCP server, and forwarding into or
    out of it from any other interface is dropped (ISOBENCH-FWD, jumped to first from FORWARD)."""
    paths = StatePaths(STATE)
    drv = DRIVERS["lxc"]("t", {"net": "bridge"}, Limits(1, 512), paths, {"rootfs": str(image_root())})
    with drv.start("isobench-iso-br"):
        fwd = subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True, text=True).stdout
        assert "isobench0" not in fwd and fwd.splitlines()[1].endswith("-j ISOBENCH-FWD"), fwd
        own = subprocess.run(["iptables", "-S", "ISOBENCH-FWD"], capture_output=True, text=True).stdout
        assert "! -i isobench0 -o isobench0" in own and "-i isobench0 ! -o isobench0" in own, own
        assert all(line.endswith("-j DROP") for line in own.splitlines() if line.startswith("-A ")), own
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        assert not any("dnsmasq" in line and "isobench0" in line for line in ps.splitlines())


# every server workload, with the smallest settings that start its server
SERVERS = {
    "redis": ({}, [16379]),
    "mysql": ({"tables": 1, "table_size": 100, "buffer_pool_mib": 32}, [13306]),
    "net_bandwidth": ({}, [15201]),
    "net_latency": ({}, [15301]),
}


@pytest.mark.parametrize("net", ["native", "host", "bridge"])
@pytest.mark.parametrize("kind", sorted(SERVERS))
def test_servers_listen_only_on_the_private_address(tmp_path, kind, net):
    """While a server workload is prepared (its server up), every socket on its ports is bound to
    the instance's bind address: a loopback address of its own where the host's network is shared
    (native, LXC host), the container's bridge address otherwise. Nothing listens on the host's
    other interfaces."""
    paths = StatePaths(STATE)
    image = {"rootfs": str(image_root())}
    if net == "native":
        drv = DRIVERS["native"]("t", {}, Limits(2, 1024), paths, image)
    else:
        drv = DRIVERS["lxc"]("t", {"net": net}, Limits(2, 1024), paths, image)
    params, ports = SERVERS[kind]
    wl = WORKLOADS[kind](kind, {**{k: v["default"] for k, v in WORKLOADS[kind].PARAMS.items()}, **params})
    client_holder = []

    def client():
        if not client_holder:
            client_holder.append(DRIVERS["native"]("c", {}, Limits(2, 1024), paths, image).start("isobench-iso-client"))
        return client_holder[0]

    try:
        with drv.start(f"isobench-iso-{kind.replace('_', '-')}") as inst:
            wl.prepare(Context(inst=inst, client=client, cache_dir=tmp_path, facts={}))
            where = inst if net == "bridge" else None          # the namespace the server is in
            argv = ["ss", "-H", "-ltun"]
            out = (where.exec(argv).check().stdout if where else
                   subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
            bound = [line.split()[4] for line in out.splitlines()
                     if any(line.split()[4].endswith(f":{p}") for p in ports)]
            assert bound, f"no {kind} server socket found"
            assert all(b.rsplit(":", 1)[0] == inst.bind_address for b in bound), bound
            # the host's network: a loopback address of the instance's own (instances of one round
            # alive together serve the same port), never a non-loopback interface
            assert inst.bind_address == (loopback_for(inst.name) if net != "bridge" else inst.ip)
            assert net == "bridge" or inst.bind_address.startswith("127.")
    finally:
        for c in client_holder:
            c.stop()
