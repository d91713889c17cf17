"""Host-side networking the pipeline owns: a private bridge, its forwarding isolation, and DNAT rules,
each carrying the ownership marker of its state_dir (base.owner_marker).

The bridge has a static address, no DHCP and no NAT to the outside; the filter chain ISOBENCH-FWD
(jumped to first from FORWARD) drops anything routed into the bridge from another interface or out
of it to another, so even with ``ip_forward=1`` a neighbour cannot reach a container. The DNAT
chain ISOBENCH-DNAT is hooked into nat OUTPUT only: it rewrites connections the host itself opens
to a host address towards a container (Docker's published ports, the paper's "Docker NAT"), never
traffic arriving from outside. The bridge's alias and every rule's comment carry the marker;
``remove_*`` touch only what carries the given marker (or, made before markers, the old names).
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import logging
import shlex
from collections.abc import Iterable
from pathlib import Path

from ..errors import InstanceError
from ..util import run

log = logging.getLogger("isobench")

NAT_CHAIN = "ISOBENCH-DNAT"
FWD_CHAIN = "ISOBENCH-FWD"


def bridge_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def bridge_alias(name: str) -> str:
    try:
        return Path(f"/sys/class/net/{name}/ifalias").read_text().strip()
    except OSError:
        return ""


def ensure_bridge(name: str, subnet: str, marker: str) -> str:
    """Create the bridge (alias ``marker``) with the subnet's first address if missing, and its
    forwarding isolation; return that address. A device of that name made by anyone else (another
    alias) is left alone and is an error."""
    net = ipaddress.ip_network(subnet)
    gw = str(next(net.hosts()))
    if bridge_exists(name):
        alias = bridge_alias(name)
        if alias and alias != marker:
            raise InstanceError(f"network device {name} exists and is not this state_dir's (its alias is "
                                f"'{alias[:80]}', not '{marker}'); remove it or run that state_dir's cleanup")
        if not alias:   # made by an earlier version of this project (same name): adopt it
            run(["ip", "link", "set", name, "alias", marker])
    else:
        run(["ip", "link", "add", name, "type", "bridge"])
        run(["ip", "link", "set", name, "alias", marker])
        Path(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6").write_text("1\n")
        run(["ip", "addr", "add", f"{gw}/{net.prefixlen}", "dev", name])
        run(["ip", "link", "set", name, "up"])
        log.info("created bridge %s (%s/%d)", name, gw, net.prefixlen)
    ensure_isolation(name, marker)
    return gw


def bridge_ports(name: str) -> list[str]:
    p = Path(f"/sys/class/net/{name}/brif")
    return sorted(x.name for x in p.iterdir()) if p.exists() else []


def remove_bridge(name: str, marker: str, only_if_unused: bool = True) -> bool:
    """Delete the bridge if it carries ``marker`` (or no alias: made before markers, then only when
    no port is attached), and its isolation rules."""
    removed = False
    if bridge_exists(name):
        alias = bridge_alias(name)
        ours = alias == marker or (not alias and not bridge_ports(name))
        if ours and not (only_if_unused and bridge_ports(name)):
            run(["ip", "link", "del", name], check=False)
            removed = True
    if not bridge_exists(name):
        remove_isolation(name, marker)
    return removed


def address_for(name: str, subnet: str, taken: frozenset[str] | set[str] = frozenset()) -> tuple[str, str]:
    """A stable address and MAC for an instance name (a reused IP keeps its MAC: no stale ARP): the
    name's hashed slot, or the next free one when another live instance holds it (``taken``: the
    instances of one round are alive together, and two names may hash alike)."""
    net = ipaddress.ip_network(subnet)
    span = min(net.num_addresses - 3, 240)
    start = int(hashlib.sha256(name.encode()).hexdigest(), 16) % span
    for k in range(span):
        ip = net.network_address + 10 + (start + k) % span
        if str(ip) not in taken:
            break
    else:
        raise ValueError(f"no free address in {subnet} for {name}")
    mac = "00:16:3e:" + ":".join(f"{b:02x}" for b in ip.packed[-3:])
    return str(ip), mac


#: the file in an instance's directory holding its address, so that the next instance of the same
#: network picks another one (:func:`addresses_held`)
ADDRESS_FILE = "address"


def addresses_held(dirs: Iterable[Path]) -> set[str]:
    """The addresses recorded (:data:`ADDRESS_FILE`) in these instance directories: the live
    instances of one network, to pass as ``taken`` to :func:`address_for`."""
    held = set()
    for d in dirs:
        with contextlib.suppress(OSError):
            held.add((d / ADDRESS_FILE).read_text().strip())
    return held


# -- iptables ------------------------------------------------------------------------------------
def _ipt(*args: str, check: bool = True):
    return run(["iptables", "-w", "5", *args], check=check)


def _rules(table: str, chain: str | None = None) -> list[list[str]]:
    """The rules (``-A ...`` lines of ``iptables -S``, as words) of a chain, or of the whole table."""
    proc = _ipt("-t", table, "-S", *([chain] if chain else []), check=False)
    return [shlex.split(line) for line in proc.stdout.decode().splitlines() if line.startswith("-A ")]


def _comment(rule: list[str]) -> str | None:
    return rule[rule.index("--comment") + 1] if "--comment" in rule else None


def _has_chain(table: str, chain: str) -> bool:
    return _ipt("-t", table, "-nL", chain, check=False).returncode == 0


def _drop_chain_if_empty(table: str, chain: str, marker: str | None) -> bool:
    """Remove a chain of ours once it holds no rule, with the jumps to it (ours or, from before
    markers, unmarked ones)."""
    if not _has_chain(table, chain) or _rules(table, chain):
        return False
    for rule in _rules(table):
        if rule[-2:] == ["-j", chain] and _comment(rule) in (marker, None):
            _ipt("-t", table, "-D", *rule[1:], check=False)
    return _ipt("-t", table, "-X", chain, check=False).returncode == 0


def ensure_isolation(bridge: str, marker: str) -> None:
    """Drop forwarding into ``bridge`` from any other interface and out of it to any other (the
    host's own traffic to the bridge is output and input, never forwarded)."""
    if not _has_chain("filter", FWD_CHAIN):
        _ipt("-t", "filter", "-N", FWD_CHAIN)
    want = [["-o", bridge, "!", "-i", bridge], ["-i", bridge, "!", "-o", bridge]]
    for match in want:
        rule = [FWD_CHAIN, *match, "-m", "comment", "--comment", marker, "-j", "DROP"]
        if _ipt("-t", "filter", "-C", *rule, check=False).returncode != 0:
            _ipt("-t", "filter", "-A", *rule)
    jump = ["FORWARD", "-m", "comment", "--comment", marker, "-j", FWD_CHAIN]
    if _ipt("-t", "filter", "-C", *jump, check=False).returncode != 0:
        _ipt("-t", "filter", "-I", jump[0], "1", *jump[1:])


def remove_isolation(bridge: str, marker: str) -> int:
    """Delete the isolation rules of ``bridge`` carrying ``marker``; drop the chain when empty."""
    removed = 0
    for rule in _rules("filter", FWD_CHAIN) if _has_chain("filter", FWD_CHAIN) else []:
        if _comment(rule) == marker and bridge in rule:
            _ipt("-t", "filter", "-D", *rule[1:], check=False)
            removed += 1
    _drop_chain_if_empty("filter", FWD_CHAIN, marker)
    return removed


def ensure_nat_chain(marker: str) -> None:
    """The DNAT chain, jumped to from nat OUTPUT only (a jump from PREROUTING, as earlier versions
    made, would let traffic from outside reach the containers: it is removed)."""
    if not _has_chain("nat", NAT_CHAIN):
        _ipt("-t", "nat", "-N", NAT_CHAIN)
    for rule in _rules("nat", "PREROUTING"):
        if rule[-2:] == ["-j", NAT_CHAIN]:
            _ipt("-t", "nat", "-D", *rule[1:], check=False)
    jump = ["OUTPUT", "-m", "comment", "--comment", marker, "-j", NAT_CHAIN]
    if _ipt("-t", "nat", "-C", *jump, check=False).returncode != 0:
        _ipt("-t", "nat", "-I", *jump)


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


def add_dnat(host_ip: str, port: int, target_ip: str, tag: str, marker: str) -> int:
    """Publish target_ip:port on a free host port of host_ip (TCP and UDP), for the host's own
    connections only, each rule commented ``<marker>:<tag>`` (tag: the instance name); return the
    host port."""
    ensure_nat_chain(marker)
    host_port = free_host_port(port, published_ports(host_ip))
    for proto in ("tcp", "udp"):
        _ipt("-t", "nat", "-A", NAT_CHAIN, "-d", f"{host_ip}/32", "-p", proto, "--dport", str(host_port),
             "-m", "comment", "--comment", f"{marker}:{tag}", "-j", "DNAT", "--to-destination", f"{target_ip}:{port}")
    return host_port


def remove_dnat(marker: str, tag: str | None = None, legacy_tags: frozenset[str] = frozenset()) -> int:
    """Delete the DNAT rules of instance ``tag`` (all of this marker's when None, and those earlier
    versions made for the instances in ``legacy_tags``, commented with the bare instance name);
    drop the chain and its jumps when empty."""
    if not _has_chain("nat", NAT_CHAIN):
        return 0
    removed = 0
    for rule in _rules("nat", NAT_CHAIN):
        c = _comment(rule) or ""
        mine = c == f"{marker}:{tag}" if tag is not None else c.startswith(f"{marker}:")
        legacy = tag is None and c in legacy_tags
        if mine or legacy:
            _ipt("-t", "nat", "-D", *rule[1:], check=False)
            removed += 1
    _drop_chain_if_empty("nat", NAT_CHAIN, marker)
    return removed


def loopback_for(name: str) -> str:
    """A loopback address of its own for an instance on the host's network (native, ``net: host``):
    instances of one round alive together then serve the same port without colliding. Stable per
    name, in 127.0.0.0/8 (all of it is the host's lo) and never 127.0.0.1."""
    digest = hashlib.sha256(name.encode()).digest()
    return f"127.{digest[0]}.{digest[1]}.{2 + digest[2] % 253}"
