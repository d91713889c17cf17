"""Config validation: the shipped config loads; every bad key or value is one line naming the key."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from conftest import ROOT, variant
from isobench import config
from isobench.errors import ConfigError


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
    raw = variant(default_raw, workloads={"f": {"kind": "fio"}})
    cfg = config.load(raw)
    assert cfg.workloads["f"]["iodepth"] == 16 and cfg.workloads["f"]["rw"] == "randread"


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
    ({"workloads__fio_randread__bs": "4k; rm -rf /"}, "workloads.fio_randread", "does not match"),
    ({"workloads__x": {"kind": "nope"}}, "workloads.x.kind", "is not one of"),
    ({"run": {"workloads": ["missing"]}}, "run.workloads", "'missing' is not defined"),
    ({"run": {"environments": ["kvm9"]}}, "run.environments", "'kvm9' is not defined"),
    ({"limits__memory_mib": 1}, "limits.memory_mib", "less than the minimum"),
    ({"state_dir": "relative/dir"}, "state_dir", "does not match"),
    ({"image__packages": ["fio", "x; curl evil"]}, "image.packages.1", "does not match"),
    ({"image__mirror": "http://host/$(id)"}, "image.mirror", "does not match"),
])
def test_bad_values_fail_with_one_line_naming_the_key(default_raw, changes, key, expected):
    with pytest.raises(ConfigError) as err:
        config.load(variant(default_raw, **changes))
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"config: {key}"), msg
    assert expected in msg


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
    env = yaml.safe_load((ROOT / "envs" / "analysis.yaml").read_text())
    for dep in env["dependencies"]:
        name, _, version = dep.partition("=")
        if name == "python":
            continue
        assert reqs.get(name.lower()) == version, f"envs/analysis.yaml pins {name}={version}, requirements.txt {reqs.get(name.lower())}"


def test_config_comments_name_only_existing_keys(default_raw):
    """Every key in the shipped config.yaml is in the schema (the comments describe real keys)."""
    sch = config.schema()
    for key in default_raw:
        assert key in sch["properties"], key
    assert re.search(r"^profile: quick$", (ROOT / "config" / "config.yaml").read_text(), re.M)


def test_cells_are_measured_round_by_round_in_a_random_order(default_raw):
    """Round by round; in a round each workload on every environment back to back, the environments
    in an order drawn per round from the seed; warmups first, collecting and decisions after."""
    from isobench.pipeline import SETUP_PRIORITY, Plan
    envs = ["native", "native_aa", "lxc_bridge", "lxc_host"]
    raw = variant(default_raw, run={"environments": envs, "workloads": ["compression", "stream"]})
    plan = Plan(config.load(raw))
    cells = [(e, w, r) for r in (1, 2, 3) for w in ("compression", "stream") for e in envs]
    order = sorted(cells, key=lambda c: -plan.cell_priority(*c))
    for i in range(0, len(order), len(envs)):       # blocks of one workload x round
        block = order[i:i + len(envs)]
        assert len({(w, r) for _, w, r in block}) == 1 and sorted(e for e, *_ in block) == sorted(envs)
        _, w, r = block[0]
        assert [e for e, *_ in block] == plan.round_order(w, r)
    assert [(w, r) for _, w, r in order[::len(envs)]] == [("compression", 1), ("stream", 1), ("compression", 2),
                                                           ("stream", 2), ("compression", 3), ("stream", 3)]
    assert len({tuple(plan.round_order("compression", r)) for r in range(1, 30)}) > 5   # drawn, not rotated
    prios = [plan.cell_priority(*c) for c in cells]
    assert len(set(prios)) == len(prios) and 0 < min(prios) and max(prios) < SETUP_PRIORITY
    other = Plan(config.load(variant(raw, seed=7)))
    assert [other.round_order("compression", r) for r in range(1, 10)] != [
        plan.round_order("compression", r) for r in range(1, 10)]


def test_precision_targets_by_category_and_override(default_raw):
    cfg = config.load(variant(default_raw, workloads__redis__precision_pct=3.5))
    assert cfg.target_pct("compression") == 2 and cfg.target_pct("net_latency") == 5
    assert cfg.target_pct("redis") == 3.5 and "precision_pct" not in cfg.workloads["redis"]
    p = cfg.round_policy("stream")
    assert (p.min_rounds, p.max_rounds, p.budget_s, p.target_pct) == (5, 40, 240.0, 2.0)
    assert "native_aa" in cfg.environments and cfg.environments["native_aa"]["driver"] == "native"
