"""Runs last (pytest collects files in name order): after the whole suite, no isobench object is
left on the host (containers, mounts, bridges, firewall rules, libvirt domains, networks, logs),
and the libvirt daemons and firewall chains are as the suite found them."""

import pytest

from isobench.drivers import StatePaths, release_all
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
