"""Config validation: the shipped config loads; every bad key or value is one line naming the key."""

from __future__ import annotations

import json
import os
import re
import stat

import pytest
import yaml

from isobench import config
from isobench.errors import ConfigError

from conftest import ROOT, variant


def test_default_config_loads_and_resolves_the_quick_profile(default_raw):
    cfg = config.load(default_raw)
    assert cfg.profile == "quick"
    assert cfg.workloads["compression"]["corpus_mib"] == 24          # {quick: 24, full: 1024}
    assert cfg.workloads["fio_randread"]["numjobs"] == 1
    assert cfg.environments["lxc_nat"] == {"driver": "lxc", "net": "nat", "storage": "rootfs"}
    assert cfg.run_environments[0] == "native"


def test_full_profile_picks_full_values(default_raw):
    cfg = config.load(variant(default_raw, profile="full"))
    assert cfg.workloads["compression"]["corpus_mib"] == 1024


def test_defaults_are_filled(default_raw):
    raw = variant(default_raw, workloads={"f": {"kind": "fio"}}, run=None)    # the lists name the default workloads
    cfg = config.load(raw)
    assert cfg.workloads["f"]["iodepth"] == 16 and cfg.workloads["f"]["rw"] == "randread"


def _fails_in_one_line(call, key, expected):
    """``call()`` raises a ConfigError of one line that names the key first and says ``expected``."""
    with pytest.raises(ConfigError) as err:
        call()
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"config: {key}: "), msg
    assert expected in msg, msg


@pytest.mark.parametrize("changes, key, expected", [
    ({"repetitions": 3}, "repetitions", "no longer a key"),
    ({"rounds__min": "three"}, "rounds.min", "not of type 'integer'"),
    ({"rounds__max": 0}, "rounds.max", "less than the minimum"),
    ({"precision__cpu": 0}, "precision.cpu", "less than or equal to the minimum"),
    ({"workloads__compression__precision_pct": -1}, "workloads.compression.precision_pct", "minimum"),
    ({"profile": "huge"}, "profile", "is not one of"),
    ({"bogus_key": 1}, "(top level)", "'bogus_key' was unexpected"),
    ({"environments__lxc_nat__net": "macvlan"}, "environments.lxc_nat.net", "is not one of"),
    ({"environments__lxc_nat__cpus": 3}, "environments.lxc_nat", "'cpus' was unexpected"),
    ({"environments__x": {"driver": "docker"}}, "environments.x.driver", "is not one of"),
    ({"workloads__fio_randread__iodepth": "deep"}, "workloads.fio_randread.iodepth", "deep"),
    ({"workloads__fio_randread__size_mib": {"quick": 1}}, "workloads.fio_randread.size_mib", ""),
    ({"workloads__fio_randread__bs": "4k; rm -rf /"}, "workloads.fio_randread.bs", "does not match"),
    ({"workloads__x": {"kind": "nope"}}, "workloads.x.kind", "is not one of"),
    ({"run": {"workloads": ["missing"]}}, "run.workloads", "'missing' is not defined"),
    ({"run": {"environments": ["kvm9"]}}, "run.environments", "'kvm9' is not defined"),
    ({"limits__memory_mib": 1}, "limits.memory_mib", "less than the minimum"),
    ({"image__packages": ["fio", "x; curl evil"]}, "image.packages.1", "does not match"),
    ({"image__mirror": "http://host/$(id)"}, "image.mirror", "does not match"),
    ({"network__lxc_subnet": "10.1.2.3/24"}, "network.lxc_subnet",
     "'10.1.2.3/24' is not a network (host bits set; did you mean 10.1.2.0/24?)"),
    ({"network__kvm_subnet": "10.213.78.17/28"}, "network.kvm_subnet", "did you mean 10.213.78.16/28?"),
    ({"network__lxc_subnet": "10.300.0.0/24"}, "network.lxc_subnet", "does not appear to be an IPv4 or IPv6 network"),
    ({"network__lxc_subnet": "10.1.2.0.0/24"}, "network.lxc_subnet", "does not appear to be"),
    ({"network__lxc_subnet": "10.01.2.0/24"}, "network.lxc_subnet", "does not appear to be"),
    ({"network__kvm_subnet": "10.213.77.0/24"}, "network.kvm_subnet", "overlaps network.lxc_subnet (10.213.77.0/24)"),
    ({"network__kvm_subnet": "10.213.77.128/28"}, "network.kvm_subnet", "overlaps network.lxc_subnet"),
    ({"network__lxc_subnet": "10.213.78.64/26"}, "network.kvm_subnet", "overlaps network.lxc_subnet (10.213.78.64/26)"),
    ({"network__kvm_subnet": "10.1.0.0/16"}, "network.kvm_subnet", "does not match"),      # the schema's /24../28
])
def test_bad_values_fail_with_one_line_naming_the_key(default_raw, changes, key, expected):
    _fails_in_one_line(lambda: config.load(variant(default_raw, **changes)), key, expected)


ENVS_FOR_RUN = {"environments": ["native", "native_aa", "lxc_host", "lxc_nat"], "workloads": ["compression", "redis"]}


@pytest.mark.parametrize("environments_for, key, expected", [
    ({"nope": ["native"]}, "run.environments_for.nope", "workload 'nope' is not defined (defined: "),
    ({"redis": ["native", "kvm9"]}, "run.environments_for.redis", "environment 'kvm9' is not defined (defined: "),
    ({"compression": ["native"], "redis": ["native_aa", "lxc_nat"]}, "run.environments_for.redis",
     "the baseline environment 'native' is missing: every overhead of 'redis' is paired with its native cell"),
    ({"redis": []}, "run.environments_for.redis", "should be non-empty"),
    ({"redis": "native"}, "run.environments_for.redis", "is not of type 'array'"),
    ({"redis": ["native", "native"]}, "run.environments_for.redis", "non-unique"),
    ({"Redis": ["native"]}, "run.environments_for", "does not match"),
])
def test_bad_environments_for_fails_with_one_line_naming_workload_and_env(default_raw, environments_for, key,
                                                                          expected):
    raw = variant(default_raw, run={**ENVS_FOR_RUN, "environments_for": environments_for})
    _fails_in_one_line(lambda: config.load(raw), key, expected)


def test_environments_for_resolves_every_workload_in_run_order(default_raw):
    """A named workload gets its list in run.environments order (however it is written), the others
    all of run.environments; without the key, every workload runs everywhere."""
    raw = variant(default_raw, run={**ENVS_FOR_RUN, "environments_for": {"redis": ["lxc_nat", "native"]}})
    cfg = config.load(raw)
    assert cfg.environments_of("redis") == ("native", "lxc_nat")
    assert cfg.environments_of("compression") == ("native", "native_aa", "lxc_host", "lxc_nat")
    assert set(cfg.run_environments_for) == {"compression", "redis"}
    plain = config.load(variant(default_raw, run=ENVS_FOR_RUN))
    assert all(plain.environments_of(w) == plain.run_environments for w in plain.run_workloads)


def test_environments_for_may_name_what_a_narrower_run_leaves_out(default_raw):
    """``--config run=...`` narrowing a config with lists (rerun one workload, on fewer
    environments) keeps working: names the run leaves out are not run, not an error."""
    raw = variant(default_raw, run={**ENVS_FOR_RUN, "environments_for": {
        "fio_randread": ["native"], "redis": ["native", "lxc_bridge", "lxc_nat"]}})
    cfg = config.load(raw)
    assert cfg.environments_of("redis") == ("native", "lxc_nat")
    assert "fio_randread" not in cfg.run_environments_for


@pytest.mark.parametrize("state_dir, expected", [
    ("relative/dir", "does not match"),                    # the schema's pattern
    ("/var/lib/../tmp/isobench", "has a '..' component"),
    ("/var/lib/./isobench", "has a '.' component"),
    ("/var/lib/isobench/..", "'..'"),
    ("//", "is / itself"),
    ("/etc/passwd/isobench", "/etc/passwd is not a directory"),
])
def test_bad_state_dir_fails_with_one_line(default_raw, state_dir, expected):
    _fails_in_one_line(lambda: config.load(variant(default_raw, state_dir=state_dir)), "state_dir", expected)


@pytest.mark.parametrize("name", ["../escape", "a b", "UPPER", "x" * 30, "semi;colon", "1starts_digit", "dash-ed"])
def test_unsafe_names_are_rejected(default_raw, name):
    """Names reach paths, instance names and command lines: only [a-z][a-z0-9_]* passes."""
    raw = variant(default_raw)
    raw["workloads"][name] = {"kind": "fio"}
    with pytest.raises(ConfigError, match="^config: workloads"):
        config.load(raw)


def test_native_baseline_is_required(default_raw):
    raw = variant(default_raw)
    raw["environments"] = {"lxc": {"driver": "lxc"}}
    with pytest.raises(ConfigError, match="baseline environment 'native'"):
        config.load(raw)


def test_generated_schema_matches_the_code():
    """config/schema.json is generated from the modules; regenerate it when this fails."""
    on_disk = json.loads((ROOT / "config" / "schema.json").read_text())
    assert on_disk == json.loads(config.schema_json()), \
        "config/schema.json is stale: run `cd scripts && python -m isobench.config > ../config/schema.json`"


def test_every_schema_key_is_described():
    def walk(node, path):
        if isinstance(node, dict) and "properties" in node:
            for k, sub in node["properties"].items():
                if k not in ("driver", "kind", "quick", "full"):
                    assert sub.get("description"), f"{path}.{k} has no description"
                walk(sub, f"{path}.{k}")
        if isinstance(node, dict):
            for sub in node.get("$defs", {}).values():
                walk(sub, path)
    walk(config.schema(), "config")


def test_conda_env_pins_match_requirements():
    reqs = dict(line.strip().lower().split("==") for line in (ROOT / "requirements.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    for path in sorted((ROOT / "envs").glob("*.yaml")):
        env = yaml.safe_load(path.read_text())
        for dep in env["dependencies"]:
            name, _, version = dep.partition("=")
            if name == "python":
                continue
            want = reqs.get(name.lower())
            assert want == version, f"envs/{path.name} pins {name}={version}, requirements.txt {want}"


def test_config_comments_name_only_existing_keys(default_raw):
    """Every key in the shipped config.yaml is in the schema (the comments describe real keys)."""
    sch = config.schema()
    for key in default_raw:
        assert key in sch["properties"], key
    assert re.search(r"^profile: quick$", (ROOT / "config" / "config.yaml").read_text(), re.M)


def test_rounds_are_measured_round_by_round_in_a_random_order(default_raw):
    """Round by round, in a round workload by workload (one job measures a workload's round on all
    its environments); the environments of a round in an order drawn per round from the seed;
    warmups first, collecting and decisions after."""
    from isobench.pipeline import SETUP_PRIORITY, Plan
    envs = ["native", "native_aa", "lxc_bridge", "lxc_host"]
    raw = variant(default_raw, run={"environments": envs, "workloads": ["compression", "stream"]})
    plan = Plan(config.load(raw))
    rounds = [(w, r) for r in (1, 2, 3) for w in ("compression", "stream")]
    order = sorted(rounds, key=lambda c: -plan.round_priority(*c))
    assert order == [("compression", 1), ("stream", 1), ("compression", 2), ("stream", 2), ("compression", 3),
                     ("stream", 3)]
    assert all(sorted(plan.round_order(w, r)) == sorted(envs) for w, r in rounds)
    assert len({tuple(plan.round_order("compression", r)) for r in range(1, 30)}) > 5   # drawn, not rotated
    prios = [plan.round_priority(*c) for c in rounds]
    assert len(set(prios)) == len(prios) and min(prios) > 0 and max(prios) < SETUP_PRIORITY
    other = Plan(config.load(variant(raw, seed=7)))
    assert [other.round_order("compression", r) for r in range(1, 10)] != [
        plan.round_order("compression", r) for r in range(1, 10)]


def _restricted_plan(default_raw, **changes):
    from isobench.pipeline import Plan
    run = {"environments": ["native", "native_aa", "lxc_bridge", "lxc_host"],
           "workloads": ["compression", "stream", "redis"],
           "environments_for": {"stream": ["lxc_host", "native"]}}
    return Plan(config.load(variant(default_raw, run=run, **changes)))


def test_a_restricted_workload_is_planned_on_its_own_environments(default_raw):
    plan = _restricted_plan(default_raw)
    every = ["native", "native_aa", "lxc_bridge", "lxc_host"]
    assert plan.environments_of("stream") == ["native", "lxc_host"]
    assert plan.environments_of("compression") == plan.environments_of("redis") == every
    assert plan.round_cells("stream", 2, plan.environments_of("stream")) == [
        f"results/cells/{e}/stream/round-2.parquet" for e in ("native", "lxc_host")]
    assert plan.round_cells("redis", 1, plan.environments_of("redis")) == [
        f"results/cells/{e}/redis/round-1.parquet" for e in every]
    for r in range(1, 20):
        assert sorted(plan.round_order("stream", r)) == ["lxc_host", "native"]
        assert sorted(plan.round_order("compression", r)) == sorted(every)
    assert {tuple(plan.round_order("stream", r)) for r in range(1, 20)} == {("native", "lxc_host"),
                                                                         ("lxc_host", "native")}
    assert plan.run_record()["environments_for"] == {"compression": every, "stream": ["native", "lxc_host"],
                                                     "redis": every}


def test_an_environment_no_workload_runs_on_is_not_provisioned(default_raw):
    from isobench.pipeline import Plan
    run = {"environments": ["native", "native_aa", "lxc_host"], "workloads": ["compression", "stream"],
           "environments_for": {"compression": ["native", "lxc_host"], "stream": ["native", "lxc_host"]}}
    plan = Plan(config.load(variant(default_raw, run=run)))
    assert plan.environments == plan.available_environments == ["native", "lxc_host"]
    run["environments_for"]["stream"].append("native_aa")
    assert Plan(config.load(variant(default_raw, run=run))).environments == ["native", "native_aa", "lxc_host"]


def test_precision_targets_by_category_and_override(default_raw):
    cfg = config.load(variant(default_raw, workloads__redis__precision_pct=3.5))
    assert cfg.target_pct("compression") == 2 and cfg.target_pct("net_latency") == 5
    assert cfg.target_pct("redis") == 3.5 and "precision_pct" not in cfg.workloads["redis"]
    p = cfg.round_policy("stream")
    assert (p.min_rounds, p.max_rounds, p.budget_s, p.target_pct) == (5, 12, 1800.0, 2.0)
    assert cfg.budget_s == 1800.0 and cfg.order == "interleaved"
    assert "native_aa" in cfg.environments and cfg.environments["native_aa"]["driver"] == "native"


def test_margins_by_category_and_override(default_raw):
    cfg = config.load(variant(default_raw, workloads__redis__margin_pct=7.5, margins__storage=12))
    assert cfg.margin_pct("compression") == 5 and cfg.margin_pct("stream") == 5
    assert cfg.margin_pct("net_latency") == 10 and cfg.margin_pct("fio_randread") == 12
    assert cfg.margin_pct("redis") == 7.5 and "margin_pct" not in cfg.workloads["redis"]
    assert cfg.round_policy("redis").margin_pct == 7.5 and cfg.round_policy("stream").as_dict()["margin_pct"] == 5
    with pytest.raises(config.ConfigError, match="margin_pct"):
        config.load(variant(default_raw, workloads__redis__margin_pct=0))


# -- state_dir: root-owned, not world-writable, all the way down ---------------------------------
# The pipeline runs as root and deletes and mounts under state_dir. The cases are built under
# tmp_path with top=tmp_path: tmp_path sits below /tmp (world-writable, sticky), which the real check
# refuses, so its ancestors are trusted here and tmp_path and everything below it are checked.

def _dirs(tmp_path, *names, mode=0o755, uid=0):
    for name in names:
        d = tmp_path / name
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, mode)
        os.chown(d, uid, 0)
    return tmp_path / names[-1]


def check(path, tmp_path, **kw):
    config._check_state_dir(str(path), top=str(tmp_path), **kw)


def refused(path, tmp_path, **kw) -> str:
    with pytest.raises(ConfigError) as err:
        check(path, tmp_path, **kw)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("config: state_dir: "), msg
    return msg


@pytest.fixture
def root_tmp(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("chown needs root (the pipeline runs as root)")
    os.chmod(tmp_path, 0o755)
    return tmp_path


def test_state_dir_accepted_when_root_owns_every_directory(root_tmp):
    good = _dirs(root_tmp, "good")
    check(good, root_tmp)                                   # exists
    check(good / "state" / "deeper", root_tmp)              # a missing tail is created by the pipeline
    _dirs(root_tmp, "good2")
    (good / "link").symlink_to(root_tmp / "good2")
    (good / "rel").symlink_to("../good2")
    check(good / "link" / "state", root_tmp)
    check(good / "rel" / "state", root_tmp)
    check(str(good) + "/", root_tmp)


def test_state_dir_owned_by_a_user_is_refused(root_tmp):
    user = _dirs(root_tmp, "user", uid=1000)
    msg = refused(user / "state", root_tmp)
    assert msg.startswith(f"config: state_dir: {user} is owned by uid 1000 (not root): the pipeline deletes "
                          f"and mounts under state_dir as root"), msg
    _dirs(root_tmp, "good")
    own = _dirs(root_tmp, "good/own", uid=1000)             # state_dir itself a user's
    assert f"{own} is owned by uid 1000" in refused(own, root_tmp)
    inner = _dirs(root_tmp, "user/inner")                    # root's, but in a user's directory
    assert f"{user} is owned by uid 1000" in refused(inner, root_tmp)


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o757])
def test_world_writable_state_dir_or_ancestor_is_refused(root_tmp, mode):
    ww = _dirs(root_tmp, "ww", mode=mode)
    msg = refused(ww / "state", root_tmp)
    assert f"{ww} is world-writable (mode {mode:04o})" in msg, msg
    inner = _dirs(root_tmp, "ww/inner")
    assert f"{ww} is world-writable" in refused(inner, root_tmp)
    assert f"{ww} is world-writable" in refused(ww, root_tmp)


def test_symlinks_are_followed_and_every_directory_on_the_way_is_checked(root_tmp):
    user = _dirs(root_tmp, "user", uid=1000)
    _dirs(root_tmp, "user/sub")
    good = _dirs(root_tmp, "good")
    # a symlink in a good directory pointing into a bad one
    (good / "into_bad").symlink_to(user / "sub")
    msg = refused(good / "into_bad" / "state", root_tmp)
    assert f"{user} (reached through the symlink {good / 'into_bad'}) is owned by uid 1000" in msg, msg
    # relative, with '..' in the target
    (good / "rel_bad").symlink_to("../user/sub")
    assert f"{user} (reached through the symlink" in refused(good / "rel_bad", root_tmp)
    # a good target reached through a symlink the user owns the directory of (the user can swap it)
    (user / "to_good").symlink_to(good)
    assert f"{user} is owned by uid 1000" in refused(user / "to_good" / "state", root_tmp)
    # a symlink to a world-writable directory, and one to /
    ww = _dirs(root_tmp, "ww", mode=0o1777)
    (good / "to_ww").symlink_to(ww)
    assert f"{ww} (reached through the symlink {good / 'to_ww'}) is world-writable" in refused(good / "to_ww", root_tmp)
    (good / "to_root").symlink_to("/")
    assert "is / itself" in refused(good / "to_root", root_tmp)
    # a loop
    (good / "loop_a").symlink_to(good / "loop_b")
    (good / "loop_b").symlink_to(good / "loop_a")
    assert "too many levels of symbolic links" in refused(good / "loop_a" / "state", root_tmp)
    # a dangling symlink whose target climbs out of a missing directory
    (good / "dangling").symlink_to("missing/../../user")
    assert "leads through the missing" in refused(good / "dangling" / "state", root_tmp)


def test_state_dir_through_a_file_is_refused(root_tmp):
    good = _dirs(root_tmp, "good")
    (good / "file").write_text("")
    assert f"{good / 'file'} is not a directory" in refused(good / "file" / "state", root_tmp)


def test_default_state_dir_is_accepted_on_this_host():
    """/var/lib/isobench with the real filesystem and nothing trusted (top=/)."""
    config._check_state_dir("/var/lib/isobench")
    assert config._check_state_dir.__kwdefaults__["top"] == "/"


def test_tmp_itself_is_refused_on_this_host():
    """/tmp and /var/tmp are world-writable with the sticky bit: refused, as the issue says."""
    for d in ("/tmp", "/var/tmp"):
        if not os.path.isdir(d) or not os.stat(d).st_mode & stat.S_IWOTH:
            continue
        with pytest.raises(ConfigError, match=f"^config: state_dir: {d} is world-writable"):
            config._check_state_dir(f"{d}/isobench")


def test_state_dir_check_with_an_injected_filesystem():
    """lstat and readlink are injectable: a world-writable / or a user's /srv without touching the host."""
    from types import SimpleNamespace
    d = stat.S_IFDIR
    fs = {"/": (0, d | 0o755), "/srv": (1000, d | 0o755), "/opt": (0, d | 0o777), "/var": (0, d | 0o755),
          "/var/l": (0, stat.S_IFLNK | 0o777)}

    def lstat(p):
        if p not in fs:
            raise FileNotFoundError(p)
        uid, mode = fs[p]
        return SimpleNamespace(st_uid=uid, st_mode=mode)

    run = lambda p: config._check_state_dir(p, lstat=lstat, readlink=lambda p: "/srv/x")  # noqa: E731
    run("/var/isobench")
    with pytest.raises(ConfigError, match="^config: state_dir: /srv is owned by uid 1000"):
        run("/srv/isobench")
    with pytest.raises(ConfigError, match=r"^config: state_dir: /opt is world-writable \(mode 0777\)"):
        run("/opt/isobench")
    with pytest.raises(ConfigError, match=r"^config: state_dir: /srv \(reached through the symlink /var/l\)"):
        run("/var/l/isobench")
    fs["/"] = (0, d | 0o1777)
    with pytest.raises(ConfigError, match="^config: state_dir: / is world-writable"):
        run("/var/isobench")


def test_load_refuses_a_bad_state_dir_in_one_line(root_tmp, default_raw, monkeypatch):
    """Through load(), with the boundary moved to tmp_path (load checks from / otherwise)."""
    import functools
    user = _dirs(root_tmp, "user", uid=1000)
    monkeypatch.setattr(config, "_check_state_dir", functools.partial(config._check_state_dir, top=str(root_tmp)))
    with pytest.raises(ConfigError) as err:
        config.load(variant(default_raw, state_dir=str(user / "state")))
    assert str(err.value).startswith(f"config: state_dir: {user} is owned by uid 1000 (not root)")
    good = _dirs(root_tmp, "good")
    assert config.load(variant(default_raw, state_dir=str(good / "state"))).paths.root == good / "state"


# -- network subnets -----------------------------------------------------------------------------

@pytest.mark.parametrize("lxc, kvm, key, expected", [
    ("8.8.8.0/24", "10.0.0.0/24", "network.lxc_subnet", "8.8.8.0/24 is not a private IPv4 network"),
    ("10.0.0.0/24", "fd00::/120", "network.kvm_subnet", "is not a private IPv4 network"),
    ("10.0.0.0/16", "10.1.0.0/24", "network.lxc_subnet", "has prefix length /16; use /24 to /28"),
    ("10.0.0.0/24", "10.1.0.0/30", "network.kvm_subnet", "has prefix length /30"),
    ("10.0.0.0/24", "10.0.0.0/24", "network.kvm_subnet", "overlaps network.lxc_subnet (10.0.0.0/24)"),
    ("10.0.0.5/24", "10.1.0.0/24", "network.lxc_subnet", "did you mean 10.0.0.0/24?"),
])
def test_subnet_checks_beyond_the_schema(lxc, kvm, key, expected):
    """Checks the schema's pattern (10.x, /24../28) makes unreachable through load(), kept for when it changes."""
    _fails_in_one_line(lambda: config._check_subnets({"lxc_subnet": lxc, "kvm_subnet": kvm}), key, expected)


@pytest.mark.parametrize("lxc, kvm", [("10.213.77.0/24", "10.213.78.0/24"), ("10.0.0.0/28", "10.0.0.16/28"),
                                      ("10.9.9.0/25", "10.9.9.128/25")])
def test_valid_subnets_load(default_raw, lxc, kvm):
    cfg = config.load(variant(default_raw, network={"lxc_subnet": lxc, "kvm_subnet": kvm}))
    assert {k: cfg.network[k] for k in ("lxc_subnet", "kvm_subnet")} == {"lxc_subnet": lxc, "kvm_subnet": kvm}
