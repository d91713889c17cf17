"""Shared test helpers: the project root, the default config, and a loader for config variants."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"


#: the host's libvirt daemons and chains when the suite started: the suite leaves them as it found
#: them (tests/test_zz_no_leftovers.py)
HOST_AT_START: dict = {}


def pytest_sessionstart(session):
    from isobench.drivers import oci
    from isobench.drivers.kvm import daemon
    HOST_AT_START.update(daemons=daemon.running(), chains=set(daemon.libvirt_chains()),
                         ip_forward=oci.IP_FORWARD.read_text(), netavark_chains=oci.netavark_chains_exist())


@pytest.fixture
def default_raw() -> dict:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def default_rootfs() -> Path:
    """The image root filesystem of the shipped config, built into the state dir on first use (as
    the pipeline's provision stage does), so e2e tests never depend on which test ran first."""
    from isobench import config
    from isobench.image import ensure_rootfs
    cfg = config.load(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()))
    return Path(ensure_rootfs(cfg.image_spec(), cfg.paths.images)["rootfs"])


def variant(raw: dict, **changes) -> dict:
    """A copy of a raw config with dotted keys changed (value None deletes the key)."""
    out = copy.deepcopy(raw)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return out
