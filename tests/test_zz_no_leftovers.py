"""Runs last (pytest collects files in name order): after the whole suite, no isobench object is
left on the host (containers, mounts, bridges, firewall rules, libvirt domains, networks, logs,
podman containers, images and networks, gVisor sandboxes), and the libvirt daemons, firewall
chains (libvirt's, netavark's) and ip_forward are as the suite found them."""

import pytest

from isobench.drivers import StatePaths, oci, release_all
from isobench.drivers.kvm import daemon

from conftest import HOST_AT_START
from leftovers import STATE, host_leftovers


@pytest.mark.e2e
def test_the_suite_leaves_nothing_behind():
    # the daemons the tests that drive instances directly started (a pipeline run stops its own)
    release_all(StatePaths(STATE))
    assert host_leftovers() == []
    started = {n: pid for n, pid in daemon.running().items() if HOST_AT_START["daemons"].get(n) != pid}
    assert started == {}, "libvirt daemons the suite started are still running"
    assert set(daemon.libvirt_chains()) <= HOST_AT_START["chains"], "libvirt firewall chains left behind"
    assert oci.netavark_chains_exist() == HOST_AT_START["netavark_chains"], "netavark chains not as found"
    assert oci.IP_FORWARD.read_text() == HOST_AT_START["ip_forward"], "net.ipv4.ip_forward not as found"
