"""The test tiers (quick and e2e, and the host check after the whole e2e tier) and what tests share:
the project root, the default config and its variants, the fake environment kind, the synthetic
run aggregated once, the session's SLURM cluster."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"


# -- tiers ------------------------------------------------------------------------------------------
# quick: every test not marked e2e (unit, schema, lint, dry runs; no instance, daemon or host probe),
# selected by `pytest -m quick`; e2e: real environments on this host; slurm: a throwaway SLURM
# cluster (always e2e too). A plain `pytest` runs all of them (README command 2, .ci/run).
@pytest.hookimpl(tryfirst=True)     # before -m deselects
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("slurm") and not item.get_closest_marker("e2e"):
            item.add_marker(pytest.mark.e2e)
        if not item.get_closest_marker("e2e"):
            item.add_marker(pytest.mark.quick)


#: set when -m or -k left out an e2e test: the session is not the whole e2e tier
E2E_NARROWED = pytest.StashKey[bool]()


def pytest_deselected(items):
    if any(item.get_closest_marker("e2e") for item in items):
        items[0].config.stash[E2E_NARROWED] = True


def runs_the_whole_e2e_tier(session) -> bool:
    """Whether the session runs every e2e test: started on the whole test directory (no narrower
    path or test id) and nothing e2e deselected (plain `pytest`, `pytest -m e2e`, .ci/run)."""
    config = session.config
    whole = {ROOT, ROOT / "tests"}
    return (not config.stash.get(E2E_NARROWED, False)
            and all((config.invocation_params.dir / arg).resolve() in whole for arg in config.args)
            and any(item.get_closest_marker("e2e") for item in session.items))


@pytest.fixture(scope="session", autouse=True)
def host_left_as_found(request):
    """After the whole e2e tier: no isobench object is left on the host (containers, mounts, bridges,
    firewall rules, libvirt domains, networks, logs, podman containers, images and networks, gVisor
    sandboxes), and the libvirt daemons, firewall chains (libvirt's, netavark's) and ip_forward are
    as the session found them. A narrower session (quick tier, one e2e file or test) checks nothing
    and probes nothing: on a shared machine it would blame, and stop, what other runs started."""
    if not runs_the_whole_e2e_tier(request.session):
        yield
        return
    from isobench.drivers import StatePaths, oci, release_all
    from isobench.drivers.kvm import daemon

    from leftovers import STATE, host_leftovers
    daemons, chains = daemon.running(), set(daemon.libvirt_chains())
    ip_forward, netavark = oci.IP_FORWARD.read_text(), oci.netavark_chains_exist()
    yield
    # the daemons the tests that drive instances directly started (a pipeline run stops its own)
    release_all(StatePaths(STATE))
    assert host_leftovers() == [], "isobench objects left on the host after the e2e tests"
    started = {n: pid for n, pid in daemon.running().items() if daemons.get(n) != pid}
    assert started == {}, "libvirt daemons the test session started are still running"
    assert set(daemon.libvirt_chains()) <= chains, "libvirt firewall chains left behind"
    assert oci.netavark_chains_exist() == netavark, "netavark chains not as found"
    assert oci.IP_FORWARD.read_text() == ip_forward, "net.ipv4.ip_forward not as found"


# -- shared data -----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def synthetic_run(tmp_path_factory) -> dict:
    """The synthetic run of tests/synthetic.py, aggregated (read-only for the tests): its input
    paths (cells, manifests, warmups, workloads, batches), ``out`` (the folder of the aggregate
    tables), ``tables`` (their agg.Outputs) and the summary, precision, overhead and calibration
    frames."""
    import pandas as pd

    from isobench import aggregate as agg

    from synthetic import agg_outputs, make_run
    root = tmp_path_factory.mktemp("synthetic_run")
    paths = make_run(root)
    out = root / "aggregate"
    tables = agg_outputs(out)
    agg.aggregate(paths["cells"], paths["manifests"], tables, batches=paths["batches"],
                  workloads_json=paths["workloads"])
    return {**paths, "out": out, "tables": tables,
            **{name: pd.read_parquet(out / f"{name}.parquet")
               for name in ("summary", "precision", "overhead", "calibration")}}


# -- the session's SLURM cluster ---------------------------------------------------------------------
#: the nodes of the session's SLURM cluster; each node's feature is its name
SLURM_HOSTS = ["hostA", "hostB"]


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """One throwaway SLURM cluster for the session's slurm tests (tests/slurm_cluster.py: nodes
    SLURM_HOSTS, 4 CPUs declared each, partition bench), started on first use. After the last test
    its daemons and job processes are gone and /etc/slurm/slurm.conf is as the session found it."""
    from slurm_cluster import ETC_CONF, SlurmCluster, _alive, available
    ok, why = available()
    if not ok:
        pytest.skip(why)

    def link():
        return os.readlink(ETC_CONF) if ETC_CONF.is_symlink() else None
    before = link()
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm") / "lab", SLURM_HOSTS, cpus=4)
    with cluster:
        yield cluster
    assert not [n for n, p in cluster.pids.items() if _alive(p)], "SLURM daemons left running"
    assert cluster.strays == [] and cluster.leftovers() == [], "SLURM job processes left running"
    assert link() == before, f"{ETC_CONF} not restored"


# -- configs and environments ----------------------------------------------------------------------
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


@pytest.fixture
def fake_driver():
    """The ``fake`` environment kind (tests/fakes.py) registered in isobench.drivers.KINDS, and used
    for host-side clients, for one test; every instance it started is stopped afterwards."""
    from fakes import registered
    with registered() as cls:
        yield cls


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
