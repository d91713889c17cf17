"""Runs last (pytest collects files in name order): after the whole suite, no isobench object is
left on the host (containers, mounts, bridges, firewall rules, libvirt domains, networks, logs)."""

import pytest

from leftovers import host_leftovers


@pytest.mark.e2e
def test_the_suite_leaves_nothing_behind():
    assert host_leftovers() == []
