"""Isolation and hygiene of what the pipeline leaves on disk: no secrets in the image, nothing
world-writable, and DNAT rules that exist only while their container runs."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from isobench.drivers import KINDS as DRIVERS
from isobench.drivers.base import Limits, StatePaths

STATE = Path("/var/lib/isobench")
pytestmark = pytest.mark.e2e


def image_root() -> Path:
    roots = [p.parent for p in STATE.glob("images/rootfs-*/usr")]
    if not roots:
        pytest.skip("no image built yet (the e2e pipeline test builds it)")
    return roots[0]


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


def test_results_are_not_world_writable():
    results = Path(__file__).resolve().parents[1] / "results"
    if not results.exists():
        pytest.skip("no results in the checkout")
    bad = [p for p in results.rglob("*") if p.stat().st_mode & stat.S_IWOTH]
    assert not bad, bad[:5]


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
    """The bridge the pipeline creates has a static address, no forwarding rule, no DHCP server."""
    paths = StatePaths(STATE)
    drv = DRIVERS["lxc"]("t", {"net": "bridge"}, Limits(1, 512), paths, {"rootfs": str(image_root())})
    with drv.start("isobench-iso-br"):
        fwd = subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True, text=True).stdout
        assert "isobench0" not in fwd
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        assert not any("dnsmasq" in line and "isobench0" in line for line in ps.splitlines())
