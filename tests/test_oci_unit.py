"""The OCI and gVisor drivers without a host: the podman command lines each option builds, the
host ports a NAT container is published on, the runsc runtime wrapper, what availability says
and when an unavailable environment is an error, and the config that names them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from isobench import config
from isobench import workloads as wl
from isobench.drivers import KINDS, EnvSpec, Limits, StatePaths, create, oci
from isobench.errors import ConfigError

from conftest import variant

STATE = Path("/srv/bench-state")
ROOTFS = Path("/srv/bench-state/oci/instances/isobench-x/root")


LIMITS = Limits(2, 1024)


def argv_for(net="nat", volume=None, publish=None, runtime="/usr/sbin/runc", limits=LIMITS):
    return oci.run_argv(name="isobench-docker_nat-redis-1", state=STATE, rootfs=ROOTFS, runtime=runtime,
                        net=net, network="isobench-oci", ip="10.213.79.20", mac="00:16:3e:d5:4f:14",
                        publish=publish if publish is not None else {16379: 30004},
                        gateway="10.213.79.1", volume=volume, limits=limits,
                        ulimits=["--ulimit", "nofile=20000:20000"])


def pairs(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_every_object_carries_the_state_dir_label_and_our_cgroup_parent():
    argv = argv_for()
    assert pairs(argv, "--label") == [f"isobench.state_dir={STATE}"]
    assert pairs(argv, "--cgroup-parent") == ["/isobench-oci"]
    assert pairs(argv, "--name") == ["isobench-docker_nat-redis-1"]
    # underscores are not valid in host names (mpirun refuses them)
    assert pairs(argv, "--hostname") == ["isobench-docker-nat-redis-1"]


def test_the_rootfs_comes_last_then_tini():
    """--rootfs is a flag: the first word after the options is the root filesystem, then the command."""
    argv = argv_for()
    i = argv.index("--rootfs")
    assert argv[i + 1:] == [str(ROOTFS), "/usr/bin/tini", "-s", "--", "/bin/sleep", "infinity"]
    assert argv[0] == "run" and "-d" in argv[:i]


def test_limits_are_cpuset_and_memory_without_swap():
    argv = argv_for(limits=Limits(2, 1536))
    assert pairs(argv, "--cpuset-cpus") == ["0-1"]
    assert pairs(argv, "--memory") == ["1536m"] and pairs(argv, "--memory-swap") == ["1536m"]
    assert pairs(argv_for(limits=Limits(1, 512)), "--cpuset-cpus") == ["0"]


def test_nat_publishes_each_served_port_for_tcp_and_udp_on_the_bridge_address():
    argv = argv_for(publish={15301: 30002, 16379: 30003})
    assert pairs(argv, "-p") == ["10.213.79.1:30002:15301/tcp", "10.213.79.1:30002:15301/udp",
                                 "10.213.79.1:30003:16379/tcp", "10.213.79.1:30003:16379/udp"]
    assert pairs(argv, "--network") == ["isobench-oci"] and pairs(argv, "--ip") == ["10.213.79.20"]


def test_host_network_has_no_address_and_publishes_nothing():
    argv = argv_for(net="host", publish={})
    assert pairs(argv, "--network") == ["host"]
    assert "-p" not in argv and "--ip" not in argv and "--mac-address" not in argv


def test_volume_binds_a_host_directory_on_data():
    assert pairs(argv_for(volume=Path("/srv/v")), "-v") == ["/srv/v:/data"]
    assert "-v" not in argv_for()


def test_exec_is_interactive_only_with_input():
    assert oci.exec_argv("c", ["true"], interactive=False)[:1] == ["exec"]
    assert "-i" not in oci.exec_argv("c", ["true"], interactive=False)
    argv = oci.exec_argv("c", ["cat"], interactive=True)
    assert argv[1] == "-i" and argv[-2:] == ["c", "cat"]


def test_served_ports_are_every_workload_modules_port():
    want = {sys.modules[k.__module__].PORT for k in wl.KINDS.values() if hasattr(sys.modules[k.__module__], "PORT")}
    assert set(oci.served_ports()) == want and len(want) >= 4


def test_host_ports_are_a_free_block_distinct_per_instance():
    taken: set[int] = set()
    blocks = []

    def free(port: int) -> bool:
        return port not in taken

    for i in range(50):
        block = oci.choose_host_ports(f"isobench-docker_nat-redis-{i}", [15201, 16379], free)
        assert set(block) == {15201, 16379}
        assert all(oci.HOST_PORTS[0] <= h < oci.HOST_PORTS[1] for h in block.values())
        assert not taken & set(block.values())
        taken |= set(block.values())             # podman's conmon holds them while the instance lives
        blocks.append(block)
    assert len(taken) == 100


def test_host_ports_skip_a_block_with_one_busy_port():
    name = "isobench-docker_nat-redis-1"
    first = oci.choose_host_ports(name, [15201, 16379], lambda p: True)
    busy = first[16379]
    second = oci.choose_host_ports(name, [15201, 16379], lambda p: p != busy)
    assert busy not in second.values() and second != first
    with pytest.raises(Exception, match="no free block"):
        oci.choose_host_ports(name, [15201], lambda p: False)


def test_runsc_wrapper_carries_root_platform_and_netstack():
    text = oci.runsc_wrapper_text("/usr/bin/runsc", Path("/run/x/runsc"), "ptrace", "host")
    assert text.startswith("#!/bin/sh\n")
    assert 'exec /usr/bin/runsc --root=/run/x/runsc --platform=ptrace --network=host "$@"' in text


RUNSC_FLAGS_2022 = """  -platform string
    \tspecifies which platform to use: ptrace (default), kvm. (default "ptrace")
  -platform_device_path string
"""


def test_runsc_platforms_from_its_flags_text():
    assert oci.runsc_platforms(RUNSC_FLAGS_2022) == ["ptrace", "kvm"]
    newer = RUNSC_FLAGS_2022.replace("ptrace (default), kvm", "systrap (default), ptrace, kvm")
    assert oci.runsc_platforms(newer) == ["systrap", "ptrace", "kvm"]
    assert oci.runsc_platforms("no such flag") == []


def test_network_file_names_our_bridge_gateway_and_label():
    doc = oci.network_json("isobench-oci", "isobench2", "10.213.79.0/24", STATE)
    assert doc["network_interface"] == "isobench2" and doc["driver"] == "bridge"
    assert doc["subnets"] == [{"subnet": "10.213.79.0/24", "gateway": "10.213.79.1"}]
    assert doc["labels"] == {"isobench.state_dir": str(STATE)} and not doc["dns_enabled"]
    assert len(doc["id"]) == 64 and doc["id"] != oci.network_json("isobench-oci", "isobench2", "10.213.79.0/24",
                                                                   Path("/other"))["id"]


def test_limits_applied_compares_cpus_and_bytes():
    lim = Limits(2, 512)
    assert oci.limits_applied({"cpuset": "0-1", "memory": str(512 << 20)}, lim)
    assert oci.limits_applied({"cpuset": "0,1", "memory": str(512 << 20)}, lim)
    assert not oci.limits_applied({"cpuset": "0", "memory": str(512 << 20)}, lim)
    assert not oci.limits_applied({"cpuset": "0-1", "memory": "9223372036854771712"}, lim)
    assert not oci.limits_applied({"cpuset": "<missing>", "memory": "<missing>"}, lim)


def test_ulimits_never_exceed_the_pipelines_own():
    import resource
    argv = oci.ulimit_args()
    nofile = int(pairs(argv, "--ulimit")[0].split("=")[1].split(":")[0])
    nproc = int(pairs(argv, "--ulimit")[1].split("=")[1].split(":")[0])
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert hard == resource.RLIM_INFINITY or nofile <= hard
    assert nproc <= oci.PODMAN_NPROC


# -- drivers, availability, config ---------------------------------------------------------------
def make(kind: str, **options):
    spec = EnvSpec(f"t_{kind}", kind, options, Limits(1, 512), KINDS[kind].NETWORK["default"])
    return create(spec, StatePaths(STATE), {"rootfs": str(ROOTFS)})


@pytest.fixture
def host(monkeypatch):
    """A host with every tool, crun usable, runsc offering ptrace and kvm, its netstack working."""
    state = {"crun": "", "netns": False, "which": {"podman", "runc", "crun", "runsc"}}
    monkeypatch.setattr(oci.shutil, "which", lambda t: f"/usr/bin/{t}" if t in state["which"] else None)
    monkeypatch.setattr(oci, "crun_blocked", lambda: state["crun"])
    monkeypatch.setattr(oci, "netns_rmem_default", lambda: state["netns"])
    monkeypatch.setattr(oci, "tool_help", lambda argv: RUNSC_FLAGS_2022)
    monkeypatch.setattr(oci, "tool_version", lambda argv: "runsc version 0.0~20221219.0")
    return state


def test_kinds_register_themselves_in_order():
    kinds = list(KINDS)
    assert kinds.index("lxc") < kinds.index("oci") < kinds.index("gvisor") < kinds.index("kvm")
    assert KINDS["oci"].NETWORK["default"] != KINDS["gvisor"].NETWORK["default"]


def test_available_with_runc(host):
    assert make("oci", runtime="runc").availability().available


def test_crun_blocked_by_the_host_is_skipped_with_its_reason(host):
    host["crun"] = "crun refuses this host's hybrid cgroup layout"
    for d in (make("oci"), make("oci", runtime="crun")):
        a = d.availability()
        assert not a.available and not a.required and "crun refuses" in a.reason
    assert make("oci", runtime="runc").availability().available


def test_missing_tools_are_an_installation_error(host):
    host["which"] -= {"podman"}
    a = make("oci", runtime="runc").availability()
    assert (a.available, a.required) == (False, True) and "podman" in a.reason
    host["which"] |= {"podman"}
    host["which"] -= {"runsc"}
    a = make("gvisor", platform="ptrace").availability()
    assert (a.available, a.required) == (False, True) and "runsc" in a.reason


def test_gvisor_platform_not_in_this_runsc_is_an_error(host):
    a = make("gvisor", platform="systrap", netstack="host").availability()
    assert not a.available and a.required
    assert a.reason == "this runsc (runsc version 0.0~20221219.0) has no systrap platform (it offers ptrace, kvm)"
    assert "\n" not in a.reason


def test_gvisor_netstack_broken_on_this_kernel(host):
    host["netns"] = True
    a = make("gvisor", platform="ptrace").availability()
    assert not a.available and not a.required and "netstack: host" in a.reason
    assert make("gvisor", platform="ptrace", netstack="host").availability().available
    # --network host: the host's namespace, where only runsc's host stack can run
    d = make("gvisor", platform="ptrace", net="host")
    assert d.availability().available and d.netstack() == "host"


def test_gvisor_settings_record_runtime_platform_and_netstack(host):
    s = make("gvisor", platform="ptrace", netstack="host", net="nat").settings()
    assert (s["driver"], s["runtime"], s["platform"], s["netstack"], s["net"]) == \
        ("gvisor", "runsc", "ptrace", "host", "nat")
    assert make("oci", runtime="runc", net="host", storage="volume").settings()["runtime"] == "runc"


def test_subnet_only_for_networks_of_our_own():
    assert KINDS["oci"].uses_subnet({"net": "nat"}) and KINDS["oci"].uses_subnet({})
    assert not KINDS["oci"].uses_subnet({"net": "host"})


def test_default_config_names_the_docker_configurations_and_gvisor(default_raw):
    cfg = config.load(default_raw)
    got = {e: (cfg.env_spec(e).kind, dict(cfg.env_spec(e).options))
           for e in ("docker_nat", "docker_host", "docker_volume", "gvisor")}
    assert got["docker_nat"] == ("oci", {"runtime": "runc", "net": "nat", "storage": "rootfs"})
    assert got["docker_host"][1]["net"] == "host" and got["docker_volume"][1]["storage"] == "volume"
    assert got["gvisor"][0] == "gvisor" and got["gvisor"][1]["platform"] == "ptrace"
    assert got["gvisor"][1]["netstack"] == "sandbox"    # gVisor's own: skipped where it cannot start
    assert cfg.env_spec("docker_nat").subnet == "10.213.79.0/24"
    assert cfg.env_spec("docker_host").subnet is None


def test_oci_subnet_may_not_overlap_the_others(default_raw):
    with pytest.raises(ConfigError, match="network.oci_subnet: 10.213.77.0/24 overlaps network.lxc_subnet"):
        config.load(variant(default_raw, network={"oci_subnet": "10.213.77.0/24"}))
    with pytest.raises(ConfigError, match="gvisor_subnet"):
        config.load(variant(default_raw, network={"gvisor_subnet": "10.213.79.128/25"}))


def test_unknown_runtime_is_refused_by_the_schema(default_raw):
    with pytest.raises(ConfigError, match="runtime"):
        config.load(variant(default_raw, environments__docker_nat__runtime="runsc"))


def test_the_report_ranks_and_colours_every_kind_by_its_driver():
    """The report has no list of kinds: rank from Driver.ORDER, palette from Driver.FAMILY."""
    from isobench.report.figures import FAMILY_COLORS
    from isobench.report.inputs import DRIVER_FAMILY, DRIVER_RANK
    ranked = sorted(DRIVER_RANK, key=DRIVER_RANK.get)
    assert ranked == ["native", "lxc", "oci", "gvisor", "kvm"]
    assert all(DRIVER_FAMILY[k] in FAMILY_COLORS for k in KINDS)
    palettes = {id(FAMILY_COLORS[DRIVER_FAMILY[k]]) for k in KINDS}
    assert len(palettes) == len(KINDS)              # oci and gvisor do not look like LXC or KVM


@pytest.mark.parametrize("settings, candidates, expected", [
    ({"net": "nat", "storage": "rootfs"}, ["native", "docker_host", "docker_nat", "kvm"], "docker_nat"),
    ({"net": "host", "storage": "volume"}, ["native", "docker_volume", "kvm"], "docker_volume"),
    ({"net": "host", "storage": "rootfs"}, ["native", "docker", "kvm_untuned", "kvm_tuned"], "docker"),
])
def test_podman_environments_are_the_papers_docker(settings, candidates, expected):
    from isobench import paper
    manifest = {"driver": "oci", "settings": {"driver": "oci", "runtime": "runc", **settings}}
    assert paper.config_for(paper.load(), candidates, manifest)[0] == expected
    gvisor = {"driver": "gvisor", "settings": {"driver": "gvisor", **settings}}
    assert paper.config_for(paper.load(), candidates, gvisor)[0] is None    # the paper had no sandbox


def test_forwarding_is_dropped_both_ways_for_the_subnet():
    rules = oci.forward_rules("10.213.79.0/24")
    assert [r[1:3] for r in rules] == [["-s", "10.213.79.0/24"], ["-d", "10.213.79.0/24"]]
    assert all(r[0] == "FORWARD" and r[-2:] == ["-j", "DROP"] and oci.NO_FORWARD in r for r in rules)
    assert "isobench" in oci.NO_FORWARD                 # what the leftovers check looks for
