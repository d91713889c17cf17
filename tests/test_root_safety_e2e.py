"""Running as root safely, on the host itself (issue 23): the firewall rules as iptables lists them
after setup (DNAT for the host's own connections only, forwarding into the bridge dropped), and a
user's look-alike libvirt domain and LXC container named ``isobench-web``, made outside the project,
surviving the cleanup script and a whole run (native, LXC with NAT, KVM).

Needs root, iptables, the lxc tools and libvirt (started here if not running, stopped after)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from isobench.drivers import hostnet
from isobench.drivers.kvm import daemon as libvirtd

from conftest import ROOT, default_rootfs

pytestmark = pytest.mark.e2e

BUSY = "isobench: another run is measuring on this host"


def ipt(*args: str) -> list[str]:
    proc = subprocess.run(["iptables", "-w", "5", *args], capture_output=True, text=True, check=True)
    return proc.stdout.splitlines()


@pytest.fixture
def root():
    if os.geteuid() != 0 or shutil.which("iptables") is None:
        pytest.skip("needs root and iptables")


def test_nat_rules_after_setup_have_no_prerouting_jump_and_forwarding_is_dropped(root):
    """A scratch bridge and marker, so a real run on the host is not disturbed. An old-style
    PREROUTING jump (as earlier versions made) is removed when the chain is set up."""
    bridge, marker = "isobtst0", "isobench:/var/lib/isobench-e2e-nat"
    other = "isobench:/srv/another-state-dir"
    if hostnet.bridge_exists(bridge):
        pytest.skip(f"{bridge} exists")
    if subprocess.run(["iptables", "-w", "5", "-t", "nat", "-nL", hostnet.NAT_CHAIN], capture_output=True).returncode:
        ipt("-t", "nat", "-N", hostnet.NAT_CHAIN)
    ipt("-t", "nat", "-A", "PREROUTING", "-j", hostnet.NAT_CHAIN)           # what earlier versions added
    try:
        gw = hostnet.ensure_bridge(bridge, "10.213.251.0/24", marker)
        hostnet.add_dnat(gw, 6379, "10.213.251.20", "isobench-t-1", marker)
        nat = ipt("-t", "nat", "-S")
        assert not [r for r in nat if r.startswith("-A PREROUTING") and hostnet.NAT_CHAIN in r], nat
        assert f'-A OUTPUT -m comment --comment "{marker}" -j {hostnet.NAT_CHAIN}' in nat, nat
        assert (f'-A {hostnet.NAT_CHAIN} -d {gw}/32 -p tcp -m tcp --dport 6379 -m comment --comment '
                f'"{marker}:isobench-t-1" -j DNAT --to-destination 10.213.251.20:6379') in nat, nat
        forward = ipt("-S", "FORWARD")
        assert forward[1] == f'-A FORWARD -m comment --comment "{marker}" -j {hostnet.FWD_CHAIN}', forward
        fwd = ipt("-S", hostnet.FWD_CHAIN)
        assert f'-A {hostnet.FWD_CHAIN} ! -i {bridge} -o {bridge} -m comment --comment "{marker}" -j DROP' in fwd
        assert f'-A {hostnet.FWD_CHAIN} -i {bridge} ! -o {bridge} -m comment --comment "{marker}" -j DROP' in fwd
        assert Path(f"/sys/class/net/{bridge}/ifalias").read_text().strip() == marker

        # another state_dir's cleanup touches none of it
        assert hostnet.remove_dnat(other) == 0
        assert not hostnet.remove_bridge(bridge, other, only_if_unused=False)
        assert hostnet.bridge_exists(bridge) and any(marker in r for r in ipt("-t", "nat", "-S"))
    finally:
        hostnet.remove_dnat(marker, "isobench-t-1")
        hostnet.remove_bridge(bridge, marker)
    assert not hostnet.bridge_exists(bridge)
    assert not [r for r in ipt("-t", "nat", "-S") + ipt("-S") if marker in r]


# -- look-alikes ------------------------------------------------------------------------------------

LOOKALIKE = "isobench-web"
SYSTEM_LXCPATH = Path("/var/lib/lxc")
LOOKALIKE_DOMAIN = f"""<domain type='qemu'>
  <name>{LOOKALIKE}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/srv/vms/{LOOKALIKE}.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>"""


def virsh_names() -> list[str]:
    return subprocess.run(["virsh", "-c", libvirtd.URI, "list", "--all", "--name"], capture_output=True, text=True,
                          check=True).stdout.split()


def lxc_names(lxcpath: Path) -> list[str]:
    return subprocess.run(["lxc-ls", "-P", str(lxcpath), "-1"], capture_output=True, text=True).stdout.split()


def run_when_free(argv: list[str], cwd: Path, timeout: float = 1800) -> subprocess.CompletedProcess:
    """Run ``argv``; while another run holds the host lock (it refuses in one line), wait and retry."""
    end = time.monotonic() + timeout
    while True:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
        if BUSY not in proc.stderr or time.monotonic() > end:
            return proc
        time.sleep(30)


def test_lookalike_domain_and_container_survive_cleanup_and_a_run(root, tmp_path):
    if libvirtd.libvirt is None or shutil.which("lxc-ls") is None:
        pytest.skip("needs libvirt-python and the lxc tools")
    if (SYSTEM_LXCPATH / LOOKALIKE).exists():
        pytest.skip(f"{SYSTEM_LXCPATH / LOOKALIKE} exists (someone's own)")
    default_rootfs()
    daemons = tmp_path / "daemons"
    libvirtd.ensure_running(daemons)
    conn = libvirtd.connect()
    if LOOKALIKE in virsh_names():
        pytest.skip(f"a domain {LOOKALIKE} exists (someone's own)")
    dom = conn.defineXML(LOOKALIKE_DOMAIN)               # defined, not started: a user's VM
    container = SYSTEM_LXCPATH / LOOKALIKE
    (container / "rootfs").mkdir(parents=True)
    config = f"lxc.uts.name = {LOOKALIKE}\nlxc.rootfs.path = dir:{container / 'rootfs'}\nlxc.net.0.type = empty\n"
    (container / "config").write_text(config)
    try:
        assert LOOKALIKE in virsh_names() and LOOKALIKE in lxc_names(SYSTEM_LXCPATH)

        clean = run_when_free([sys.executable, str(ROOT / "scripts" / "cleanup.py")], cwd=tmp_path)
        assert clean.returncode == 0, clean.stderr
        assert LOOKALIKE not in clean.stdout
        assert LOOKALIKE in virsh_names() and LOOKALIKE in lxc_names(SYSTEM_LXCPATH)
        assert (container / "config").read_text() == config

        wd = tmp_path / "run"
        wd.mkdir()
        envs = ["native", "lxc_nat", "kvm"]
        run = {"environments": envs, "workloads": ["compression"], "environments_for": {"compression": envs}}
        argv = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(wd), "--cores", "1",
                "--configfile", str(ROOT / "tests" / "configs" / "tiny.yaml"), "--config", f"run={json.dumps(run)}",
                "--", "all"]
        proc = run_when_free(argv, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-4000:]
        assert LOOKALIKE not in proc.stderr
        cells = {p.parts[-3] for p in wd.glob("results/cells/*/*/*.parquet")}
        assert cells == set(run["environments"]), cells
        assert LOOKALIKE in virsh_names() and LOOKALIKE in lxc_names(SYSTEM_LXCPATH)
        assert (container / "config").read_text() == config
        assert dom.XMLDesc(0).count(f"/srv/vms/{LOOKALIKE}.qcow2") == 1
    finally:
        dom.undefine()
        conn.close()
        shutil.rmtree(container)
        libvirtd.stop_started(daemons)
