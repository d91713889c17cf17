"""The driver contract, over every environment kind: the real ones (native, lxc, kvm) for what needs
neither root nor a running instance (options schema, settings, availability, the subnet rule, the
value a rule passes), and the fake kind of tests/fakes.py fully, instances included. What a real
instance does is tested end to end (test_kvm_e2e.py, test_workloads_e2e.py, test_isolation.py)."""

from __future__ import annotations

import ipaddress
import json
import socket
import sys
from pathlib import Path

import jsonschema
import pytest

from isobench import drivers
from isobench.drivers.base import Availability, Driver, EnvSpec, Limits, StatePaths, wait_until
from isobench.errors import InstanceError

from fakes import MARKER, FakeDriver

KINDS: dict[str, type[Driver]] = {**drivers.KINDS, "fake": FakeDriver}
LIMITS = Limits(2, 1024)


def make(cls: type[Driver], tmp_path: Path, **options) -> Driver:
    return cls("env_a", options, LIMITS, StatePaths(tmp_path / "state"), {"rootfs": str(tmp_path / "rootfs"),
                                                                          "key": "img"})


def enum_options(cls: type[Driver]) -> list[tuple[str, list]]:
    return [(key, prop["enum"]) for key, prop in cls.OPTIONS.items() if "enum" in prop]


def test_the_real_kinds_are_found_and_the_fake_is_not_among_them():
    assert {"native", "lxc", "kvm"} <= set(drivers.KINDS)
    assert "fake" not in drivers.KINDS
    assert drivers.HOST_CLIENT is drivers.KINDS["native"]


# -- every kind ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_declaration(kind):
    cls = KINDS[kind]
    assert cls.kind == kind and isinstance(cls.ORDER, int) and isinstance(cls.LIMITED, bool)
    schema = {"type": "object", "properties": cls.OPTIONS, "additionalProperties": False}
    jsonschema.Draft202012Validator.check_schema(schema)
    for key, prop in cls.OPTIONS.items():
        assert prop.get("description"), f"{kind}.{key} has no description"
        assert "default" in prop, f"{kind}.{key} has no default"
    defaults = {key: prop["default"] for key, prop in cls.OPTIONS.items()}
    jsonschema.validate(defaults, schema)      # every default is a valid value of its own option
    if cls.NETWORK is not None:
        assert ipaddress.ip_network(cls.NETWORK["default"]).prefixlen <= 30 and cls.NETWORK["description"]


@pytest.mark.parametrize("kind", KINDS)
def test_settings_are_recorded_as_json_and_show_every_choice(kind, tmp_path):
    """No option of a kind is invisible in the record (one that resolves, like kvm's accel: auto,
    may record the same as the value it resolves to)."""
    cls = KINDS[kind]
    settings = make(cls, tmp_path).settings()
    assert settings["driver"] == kind
    assert json.loads(json.dumps(settings)) == settings
    for key, values in enum_options(cls):
        seen = [json.dumps(make(cls, tmp_path, **{key: v}).settings(), sort_keys=True) for v in values]
        assert len(set(seen)) > 1, f"{kind}: settings() are the same for every value of {key}"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("path", [None, ""], ids=["this-host", "empty-PATH"])
def test_availability_never_raises_and_says_why_not(kind, path, tmp_path, monkeypatch):
    """On this host and on one where no tool is found: an answer, never an exception."""
    if path is not None:
        monkeypatch.setenv("PATH", path)
    cls = KINDS[kind]
    variants = [{}] + [{key: v} for key, values in enum_options(cls) for v in values]
    for options in variants:
        avail = make(cls, tmp_path, **options).availability()
        assert isinstance(avail, Availability)
        assert avail.available or avail.reason, f"{kind} {options}: unavailable without a reason"
        assert {"accel", "emulated"} <= set(avail.labels)
        json.dumps(avail.as_dict())


def test_without_tools_the_kinds_that_need_them_are_unavailable(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "")
    assert make(KINDS["native"], tmp_path).availability().available
    lxc = make(KINDS["lxc"], tmp_path).availability()
    assert not lxc.available and lxc.required and "lxc-start" in lxc.reason
    assert not make(KINDS["kvm"], tmp_path, accel="tcg").availability().available


@pytest.mark.parametrize("kind", KINDS)
def test_only_a_kind_with_a_network_uses_a_subnet(kind):
    cls = KINDS[kind]
    variants = [{}] + [{key: v} for key, values in enum_options(cls) for v in values]
    answers = {cls.uses_subnet(options) for options in variants}
    assert answers <= {True, False}
    if cls.NETWORK is None:
        assert answers == {False}


@pytest.mark.parametrize("kind", KINDS)
def test_the_rule_parameter_round_trips_and_creates_the_driver(kind, fake_driver, tmp_path):
    cls = KINDS[kind]
    options = {key: prop["default"] for key, prop in cls.OPTIONS.items()}
    subnet = cls.NETWORK["default"] if cls.uses_subnet(options) else None
    spec = EnvSpec("env_a", kind, options, LIMITS if cls.LIMITED else None, subnet)
    assert EnvSpec.from_param(json.loads(json.dumps(spec.to_param()))) == spec
    driver = drivers.create(spec, StatePaths(tmp_path), {"rootfs": str(tmp_path)})
    assert type(driver) is cls and driver.env == "env_a"
    assert driver.limits == (LIMITS if cls.LIMITED else drivers.host_limits())


@pytest.mark.parametrize("kind", ["native", "fake"])   # lxc and kvm also clean host-wide objects: e2e
def test_cleanup_and_release_of_an_empty_state_dir_find_nothing(kind, tmp_path):
    cls = KINDS[kind]
    assert cls.cleanup_stale(StatePaths(tmp_path)) == [] and cls.release(StatePaths(tmp_path)) == []


# -- the fake kind, fully --------------------------------------------------------------------------
@pytest.fixture
def fake(fake_driver, tmp_path):
    def start(name="isobench-env_a-w-1", **options):
        return make(fake_driver, tmp_path, **options).start(name)
    return start


def test_fake_registration_is_for_the_test_only(fake_driver):
    assert drivers.KINDS["fake"] is fake_driver and drivers.HOST_CLIENT is fake_driver


def test_fake_exec_runs_in_its_own_directory(fake):
    with fake() as inst:
        res = inst.sh('pwd; echo "$DATA"; echo err >&2; exit 3')
        assert res.returncode == 3 and res.stderr == "err\n"
        assert res.stdout.split() == [str(inst.base), str(inst.data)] and inst.data.is_dir()
        assert inst.exec(["/bin/cat"], input=b"in").stdout == "in"
        assert inst.calls[-1] == "/bin/cat"


def test_fake_copy_in_and_out_keep_the_bytes(fake, tmp_path):
    src, back = tmp_path / "src", tmp_path / "back"
    src.write_text("line 1\nline 2\n")
    with fake() as inst:
        inst.copy_in(src, str(inst.data / "f"))
        inst.copy_out(str(inst.data / "f"), back)
    assert back.read_text() == src.read_text()


def test_fake_timeout_is_an_instance_error_and_kills_the_command(fake):
    with fake() as inst:
        with pytest.raises(InstanceError, match="timed out"):
            inst.sh(f"echo $$ > {inst.base}/pid; exec sleep 60", timeout=0.5)
        pid = int((inst.base / "pid").read_text())
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_fake_slow_commands_run_into_their_time_bound(fake):
    with fake(slow_s=30) as inst, pytest.raises(InstanceError, match="timed out"):
        inst.exec(["/bin/true"], timeout=0.5)


SERVER = """
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept(); c.sendall(b"hello"); c.close()
"""


def test_fake_spawn_serves_at_the_endpoint_and_stop_kills_it(fake):
    inst = fake()
    inst.spawn([sys.executable, "-c", SERVER], tag="server")
    log = inst.base / "server.log"
    proc = inst.servers["server"]
    wait_until(lambda: log.read_text().strip() or proc.poll() is not None, timeout=30, what="the server's port")
    ep = inst.endpoint(int(log.read_text()))
    assert ep.host == inst.bind_address == "127.0.0.1"
    with socket.create_connection((ep.host, ep.port), timeout=5) as c:
        assert c.recv(5) == b"hello"
    inst.stop()
    assert proc.poll() is not None and not inst.base.exists()
    inst.stop()     # a second stop is harmless


def test_fake_dies_at_the_nth_command(fake):
    with fake(die_after=2) as inst:
        inst.spawn(["/bin/sleep", "60"], tag="server")
        assert inst.alive() and inst.exec(["/bin/true"]).returncode == 0
        assert inst.exec(["/bin/true"]).returncode == 137
        assert not inst.alive() and inst.servers["server"].poll() is not None
        assert inst.exec(["/bin/echo", "x"]).returncode == 137
        with pytest.raises(InstanceError, match="gone"):
            inst.spawn(["/bin/sleep", "60"], tag="again")


def test_fake_dies_at_a_named_command(fake):
    with fake(die_on="step 2") as inst:
        assert inst.sh("echo step 1").stdout == "step 1\n" and inst.alive()
        assert inst.sh("echo step 2").returncode == 137 and not inst.alive()


def test_fake_cpu_seconds_is_a_counter_of_its_work(fake):
    with fake() as inst:
        before = inst.cpu_seconds()
        inst.sh("i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done")
        assert inst.cpu_seconds() > before >= 0


def test_fake_describe_sees_its_limits(fake, tmp_path):
    with fake() as inst:
        inside = inst.describe()
    assert (inside["nproc"], inside["mem_mib"]) == (LIMITS.cpus, LIMITS.memory_mib)
    make(FakeDriver, tmp_path).check_resources(inside)
    with pytest.raises(InstanceError, match="sees 1 CPUs"):
        make(FakeDriver, tmp_path).check_resources({**inside, "nproc": 1})


def test_fake_knobs_for_availability_and_start(fake, tmp_path):
    avail = make(FakeDriver, tmp_path, available=False, reason="no", required=True).availability()
    assert (avail.available, avail.reason, avail.required) == (False, "no", True)
    assert make(FakeDriver, tmp_path).availability().labels["accel"] == "fake"
    with pytest.raises(InstanceError, match="broken"):
        fake(start_error="broken")


def test_fake_cleanup_stale_removes_only_its_own_leftovers(fake, tmp_path):
    left = fake("isobench-left-1")                      # never stopped
    other = tmp_path / "state" / "instances" / "isobench-other"
    other.mkdir()
    assert (left.base / MARKER).exists()
    assert FakeDriver.cleanup_stale(StatePaths(tmp_path / "state")) == ["fake instance isobench-left-1"]
    assert not left.base.exists() and other.exists()
