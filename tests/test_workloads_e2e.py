"""Every workload kind, one real cell each, on all three environment kinds with tiny sizes.

Runs the pipeline's own cell runner and collector (cell.run_cell, collect.cell_rows) on native,
an LXC container on the private bridge (servers reached over it), and a libvirt guest (KVM where
the host has it, otherwise QEMU TCG, labelled emulated). Each cell must yield only metrics its
workload declares (fio: those of its direction), each finite and positive, at every sweep point."""

from __future__ import annotations

import math

import pytest
import yaml

from isobench import config as configmod
from isobench.cell import run_cell
from isobench.collect import cell_rows
from isobench.hostinfo import fingerprint
from isobench.image import ensure_rootfs
from isobench.measure import Measure
from isobench.workloads import KINDS

from conftest import ROOT, variant

pytestmark = pytest.mark.e2e

#: the smallest settings that still run each tool's real code path
TINY = {
    "compression": {"kind": "compression", "corpus_mib": 4},
    "fio": {"kind": "fio", "size_mib": 16, "runtime_s": 1},
    "linpack": {"kind": "linpack", "n": 256, "nb": 32},
    "stream": {"kind": "stream", "array_mib": 128, "ntimes": 3},   # STREAM: >= 4x the LLC
    "randomaccess": {"kind": "randomaccess", "n": 256, "nb": 32},
    "net_bandwidth": {"kind": "net_bandwidth", "seconds": 1},
    "net_latency": {"kind": "net_latency", "seconds": 0.3},
    "redis": {"kind": "redis", "connections": [1, 4], "requests": 500},
    "mysql": {"kind": "mysql", "threads": [2], "tables": 1, "table_size": 200, "buffer_pool_mib": 32},
}
#: environment kinds: name in the default config, with what this host can run
ENVS = ["native", "lxc_bridge", "kvm"]


def test_every_workload_kind_is_covered():
    assert set(TINY) == set(KINDS)


@pytest.fixture(scope="module")
def cfg():
    raw = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    raw = variant(raw, limits={"cpus": 2, "memory_mib": 1024}, workloads=TINY)
    cfg = configmod.load(raw)
    if not cfg.availability("kvm").available:           # no usable KVM here: the same path, emulated
        cfg = configmod.load(variant(raw, environments__kvm__accel="tcg"))
    return cfg


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("workload", sorted(TINY))
def test_one_real_cell(cfg, tmp_path, env, workload):
    image = ensure_rootfs(cfg.image_spec(), cfg.paths.images)
    out = tmp_path / "raw"
    run_cell(cfg.env_spec(env), cfg.workload(workload), 1, Measure(1, 0), cfg.paths, image, fingerprint(), out)
    rows = cell_rows(out)
    cls = KINDS[TINY[workload]["kind"]]
    got = {}
    for r in rows:
        got.setdefault(r["metric"], []).append(r["value"])
    assert got and set(got) <= set(cls.METRICS), f"{workload} on {env}: metrics {sorted(got)}"
    points = {r["point"] for r in rows}
    sweep = {"redis": {"connections=1", "connections=4"}, "mysql": {"threads=2"}}.get(workload, {""})
    assert sweep <= points, f"{workload} on {env}: points {sorted(points)}"
    bad = {m: v for m, v in got.items() if not all(math.isfinite(x) and x > 0 for x in v)}
    assert not bad, f"{workload} on {env}: non-positive values {bad}"
    if env == "kvm":
        assert {r["emulated"] for r in rows} == {cfg.environments["kvm"]["accel"] == "tcg"}


@pytest.fixture(scope="module", params=ENVS)
def instance(cfg, request):
    """One running instance per environment kind, shared by the checks of what an instance has."""
    env = request.param
    driver = cfg.driver(env, ensure_rootfs(cfg.image_spec(), cfg.paths.images))
    driver.provision()                     # e.g. the KVM guest's boot artifacts (cached)
    with driver.start(f"isobench-{env}-basics") as inst:
        yield inst


def test_the_instance_resolves_its_own_host_name(instance):
    """mpirun (hpcc) looks its host name up; with no /etc/hosts entry the lookup goes to a resolver
    the instance cannot reach and hangs for minutes (KVM: 200 s). Each instance has the entry."""
    res = instance.sh("getent hosts $(hostname)", timeout=60)
    assert res.returncode == 0 and res.stdout.split()[0] == "127.0.1.1", res.stdout + res.stderr


def test_the_instance_has_posix_shared_memory(instance):
    """/dev/shm is a tmpfs in every environment (Open MPI's shared-memory transport uses it)."""
    res = instance.sh("stat -f -c %T /dev/shm && touch /dev/shm/isobench-probe && rm /dev/shm/isobench-probe")
    assert res.returncode == 0 and res.stdout.split()[0] == "tmpfs", res.stdout + res.stderr
