"""Host-side networking the pipeline owns: a private bridge and DNAT rules, all named by prefix.

The bridge has a static address, no DHCP, no NAT to the outside and no forwarding; the DNAT chain
only rewrites host-originated connections to a host address towards a container (Docker's
published ports, the paper's "Docker NAT"). Everything here is removed by ``remove_*``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
from pathlib import Path

from ..util import run

log = logging.getLogger("isobench")

NAT_CHAIN = "ISOBENCH-DNAT"


def bridge_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def ensure_bridge(name: str, subnet: str) -> str:
    """Create the bridge with the subnet's first address if missing; return that address."""
    net = ipaddress.ip_network(subnet)
    gw = str(next(net.hosts()))
    if not bridge_exists(name):
        run(["ip", "link", "add", name, "type", "bridge"])
        Path(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6").write_text("1\n")
        run(["ip", "addr", "add", f"{gw}/{net.prefixlen}", "dev", name])
        run(["ip", "link", "set", name, "up"])
        log.info("created bridge %s (%s/%d)", name, gw, net.prefixlen)
    return gw


def bridge_ports(name: str) -> list[str]:
    p = Path(f"/sys/class/net/{name}/brif")
    return sorted(x.name for x in p.iterdir()) if p.exists() else []


def remove_bridge(name: str, only_if_unused: bool = True) -> bool:
    if not bridge_exists(name) or (only_if_unused and bridge_ports(name)):
        return False
    run(["ip", "link", "del", name], check=False)
    return True


def address_for(name: str, subnet: str) -> tuple[str, str]:
    """A stable address and MAC for an instance name (a reused IP keeps its MAC: no stale ARP)."""
    net = ipaddress.ip_network(subnet)
    span = min(net.num_addresses - 3, 240)
    idx = 10 + int(hashlib.sha256(name.encode()).hexdigest(), 16) % span
    ip = net.network_address + idx
    mac = "00:16:3e:" + ":".join(f"{b:02x}" for b in ip.packed[-3:])
    return str(ip), mac


def _ipt(*args: str, check: bool = True):
    return run(["iptables", "-w", "5", *args], check=check)


def ensure_nat_chain() -> None:
    if _ipt("-t", "nat", "-nL", NAT_CHAIN, check=False).returncode != 0:
        _ipt("-t", "nat", "-N", NAT_CHAIN)
    for hook in ("OUTPUT", "PREROUTING"):
        if _ipt("-t", "nat", "-C", hook, "-j", NAT_CHAIN, check=False).returncode != 0:
            _ipt("-t", "nat", "-I", hook, "-j", NAT_CHAIN)


def published_ports(host_ip: str) -> set[int]:
    """The host ports of ``host_ip`` our DNAT chain already publishes."""
    if _ipt("-t", "nat", "-nL", NAT_CHAIN, check=False).returncode != 0:
        return set()
    rules = _ipt("-t", "nat", "-S", NAT_CHAIN).stdout.decode().splitlines()
    return {int(r.split("--dport ")[1].split()[0]) for r in rules
            if f"-d {host_ip}/32 " in r and "--dport " in r}


def free_host_port(port: int, taken: set[int], step: int = 1000) -> int:
    """The host port to publish ``port`` on: ``port`` itself, or the first of port + k x step that
    is not taken (instances of one round alive together each get their own, as Docker's -p)."""
    p = port
    while p in taken:
        p += step
        if p > 65535:
            raise ValueError(f"no free host port for {port}")
    return p


def add_dnat(host_ip: str, port: int, target_ip: str, tag: str) -> int:
    """Publish target_ip:port on a free host port of host_ip (TCP and UDP), tagged with the instance
    name; return the host port."""
    ensure_nat_chain()
    host_port = free_host_port(port, published_ports(host_ip))
    for proto in ("tcp", "udp"):
        _ipt("-t", "nat", "-A", NAT_CHAIN, "-d", f"{host_ip}/32", "-p", proto, "--dport", str(host_port),
             "-m", "comment", "--comment", tag, "-j", "DNAT", "--to-destination", f"{target_ip}:{port}")
    return host_port


def remove_dnat(tag: str | None = None) -> int:
    """Delete the DNAT rules tagged ``tag`` (all of ours when None); drop the chain when empty."""
    if _ipt("-t", "nat", "-nL", NAT_CHAIN, check=False).returncode != 0:
        return 0
    rules = _ipt("-t", "nat", "-S", NAT_CHAIN).stdout.decode().splitlines()
    removed = 0
    for rule in rules:
        if not rule.startswith(f"-A {NAT_CHAIN} "):
            continue
        if tag is None or f'--comment {tag} ' in rule + " " or f'--comment "{tag}"' in rule:
            _ipt("-t", "nat", *["-D", *rule.split()[1:]], check=False)
            removed += 1
    remaining = [r for r in _ipt("-t", "nat", "-S", NAT_CHAIN).stdout.decode().splitlines()
                 if r.startswith("-A ")]
    if not remaining:
        for hook in ("OUTPUT", "PREROUTING"):
            while _ipt("-t", "nat", "-D", hook, "-j", NAT_CHAIN, check=False).returncode == 0:
                pass
        _ipt("-t", "nat", "-X", NAT_CHAIN, check=False)
    return removed


def loopback_for(name: str) -> str:
    """A loopback address of its own for an instance on the host's network (native, ``net: host``):
    instances of one round alive together then serve the same port without colliding. Stable per
    name, in 127.0.0.0/8 (all of it is the host's lo) and never 127.0.0.1."""
    digest = hashlib.sha256(name.encode()).digest()
    return f"127.{digest[0]}.{digest[1]}.{2 + digest[2] % 253}"
