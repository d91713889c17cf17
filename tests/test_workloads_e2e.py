"""What an instance of each environment kind has (native, an LXC container on the private bridge,
a libvirt guest: KVM where the host has it, otherwise QEMU TCG), with the tiny workload sizes.

Every workload kind measured for real on every environment is tests/test_paper_config.py's tiny
paper run (one cell per workload x environment through the whole pipeline: values finite and
positive, sweeps complete, emulated cells labelled); a real cell through the cell runner alone is
tests/test_hpcc_e2e.py and tests/test_kvm_e2e.py."""

from __future__ import annotations

import pytest
import yaml

from isobench import config as configmod
from isobench.image import ensure_rootfs
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
    raw = variant(raw, limits={"cpus": 2, "memory_mib": 1024}, workloads=TINY, run=None)   # lists name others
    cfg = configmod.load(raw)
    if not cfg.availability("kvm").available:           # no usable KVM here: the same path, emulated
        cfg = configmod.load(variant(raw, environments__kvm__accel="tcg"))
    return cfg


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
