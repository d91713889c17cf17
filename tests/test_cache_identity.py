"""A round's cache identity is everything its numbers depend on, and nothing else.

The code each round, each collect and the aggregate depend on is hashed from an edited copy of the
package (Plan.code_root), so each edit's reach is measured exactly: which rounds would re-measure
(round_code, per workload and set of environments) and which would re-collect
(parser_code). The host check and the image content key are
tested on their own; tests/test_cache_e2e.py runs the same changes through Snakemake.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from isobench import codehash, config, hostinfo, image, pipeline

from conftest import ROOT, variant

PKG = ROOT / "scripts" / "isobench"
ENVS = ["native", "lxc_bridge", "lxc_host", "kvm"]
#: the sets of environments a round may measure: all, or (later batches) only some with native
ROUND_SETS = {"all": ENVS, "no-lxc": ["native", "kvm"], "lxc": ["native", "lxc_host"]}


@pytest.fixture
def copy(tmp_path):
    dst = tmp_path / "isobench"
    shutil.copytree(PKG, dst, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


def identities(raw: dict, root: Path | None) -> dict:
    codehash.cache_clear()
    plan = pipeline.Plan(config.load(raw), code_root=root)
    return {"cell": {(k, w): plan.round_code(envs, w) for k, envs in ROUND_SETS.items() for w in plan.workloads},
            "parser": {w: plan.parser_code(w) for w in plan.workloads}, "stats": plan.stats_code()}


def changed(before: dict, after: dict, what: str) -> set:
    return {k for k, v in before[what].items() if after[what][k] != v}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


def test_a_command_change_re_measures_exactly_that_workload(default_raw, copy):
    before = identities(default_raw, copy)
    edit(copy / "workloads" / "compression.py", "xz -T{p['threads']} -{p['level']} -c",
         "xz -T{p['threads']} -{p['level']} -vc")
    after = identities(default_raw, copy)
    assert changed(before, after, "cell") == {(k, "compression") for k in ROUND_SETS}
    assert changed(before, after, "parser") == {"compression"}     # re-measured cells are re-collected
    assert after["stats"] == before["stats"]


def test_a_parser_change_in_hpcc_re_collects_linpack_and_randomaccess_only(default_raw, copy):
    before = identities(default_raw, copy)
    edit(copy / "workloads" / "hpcc.py", 'if "HPL ERROR" in raw:', 'if "HPL ERROR" in raw or "HPL FAIL" in raw:')
    after = identities(default_raw, copy)
    assert changed(before, after, "cell") == set()                  # nothing re-measured
    assert changed(before, after, "parser") == {"linpack", "randomaccess"}


def test_a_shared_server_helper_re_measures_the_server_workloads(default_raw, copy):
    before = identities(default_raw, copy)
    edit(copy / "workloads" / "servers.py", "def start_server(", "def start_server(  # edited\n")
    edit(copy / "workloads" / "servers.py", '"""Start', '"""(edited) Start')
    after = identities(default_raw, copy)
    assert {w for _, w in changed(before, after, "cell")} == {"net_bandwidth", "net_latency", "redis", "mysql"}


def test_a_driver_change_re_measures_only_the_rounds_of_its_environments(default_raw, copy):
    before = identities(default_raw, copy)
    edit(copy / "drivers" / "lxc.py", 'class LxcDriver(Driver):', 'class LxcDriver(Driver):\n    EDITED = 1')
    after = identities(default_raw, copy)
    assert {k for k, _ in changed(before, after, "cell")} == {"all", "lxc"}
    assert changed(before, after, "parser") == set()


def test_the_cell_runner_re_measures_everything_and_statistics_only_re_aggregate(default_raw, copy):
    before = identities(default_raw, copy)
    edit(copy / "cell.py", "def instance_name(", "def instance_name(  # edited\n")
    assert changed(before, identities(default_raw, copy), "cell") == set(before["cell"])
    before = identities(default_raw, copy)
    edit(copy / "stats.py", "def paired_ratio(", "def paired_ratio(  # edited\n")
    after = identities(default_raw, copy)
    assert after["stats"] != before["stats"] and changed(before, after, "cell") == set()


def test_comments_in_measuring_code_re_measure_nothing(default_raw, copy):
    before = identities(default_raw, copy)
    edit(copy / "workloads" / "fio.py", "class Fio(Workload):", "# a comment\nclass Fio(Workload):")
    assert changed(before, identities(default_raw, copy), "cell") == set()


def test_the_subnet_is_part_only_of_environments_that_use_it(default_raw):
    a = config.load(default_raw)
    b = config.load(variant(default_raw, network__lxc_subnet="10.99.0.0/24"))
    diff = {e for e in a.environments if a.env_settings(e) != b.env_settings(e)}
    assert diff == {"lxc_bridge", "lxc_nat"}                      # not lxc_host/lxc_volume (net: host)
    moved = config.load(variant(default_raw, state_dir="/var/lib/isobench-elsewhere"))
    assert all(moved.env_settings(e) == a.env_settings(e) for e in a.environments)
    assert moved.measure_settings() == a.measure_settings()


def test_a_workloads_environment_list_is_part_of_no_cell(default_raw):
    """run.environments_for changes which cells a workload has, nothing of any cell: every cell
    both configs plan has the same params (run_round's, collect_cell's), and every other workload
    the same cells and round decision params (its batches are not re-decided)."""
    def plan(envs_for):
        run = {"environments": ["native", "native_aa", "lxc_bridge", "lxc_host"],
               "workloads": ["compression", "stream", "redis"], "environments_for": envs_for}
        return pipeline.Plan(config.load(variant(default_raw, run=run)))

    def cells(p):
        return {(e, w): {"settings": p.config.env_settings(e), "workload": p.config.workload_params(w),
                         "measure": p.config.measure_settings(), "code": p.round_code([e], w),
                         "parser": p.parser_code(w)}
                for w in p.workloads for e in p.environments_of(w)}

    def decisions(p, w):
        return {"cells": p.round_cells(w, 1, p.environments_of(w)), "policy": p.config.round_policy(w),
                "primary": p.primary_metrics(w),
                "emulated": p.emulated_environments(), "code": p.stats_code()}

    before, after = plan({}), plan({"stream": ["native", "lxc_host"]})
    a, b = cells(before), cells(after)
    assert set(b) == set(a) - {("native_aa", "stream"), ("lxc_bridge", "stream")}
    assert all(b[k] == a[k] for k in b)
    for w in ("compression", "redis"):
        assert decisions(after, w) == decisions(before, w)
    assert decisions(after, "stream")["cells"] != decisions(before, "stream")["cells"]


def test_image_content_key_follows_packages_not_the_recipe_url():
    pk = {"fio": "3.33-3", "xz-utils": "5.4.1-1"}
    assert image.content_key(pk) == image.content_key(dict(reversed(list(pk.items()))))
    assert image.content_key({**pk, "fio": "3.35-1"}) != image.content_key(pk)
    spec = {"suite": "bookworm", "packages": ["fio"], "mirror": "http://a/debian"}
    assert image.image_key(spec) != image.image_key({**spec, "mirror": "http://b/debian"})  # its directory


class FakeCfg:
    def __init__(self, host_change="stop"):
        self.host_change = host_change


def test_a_changed_host_stops_the_run_with_one_line(tmp_path, monkeypatch, capsys):
    record = tmp_path / "results" / "host.json"
    here = hostinfo.fingerprint()
    pipeline.host_check(FakeCfg(), here, str(record))               # first run: recorded
    assert json.loads(record.read_text())["fingerprint"] == here["fingerprint"]
    pipeline.host_check(FakeCfg(), here, str(record))               # same host: nothing to say
    assert capsys.readouterr().err == ""
    monkeypatch.setenv(hostinfo.OVERRIDE_ENV, json.dumps({"kernel": "9.9.9-other", "cores": 64}))
    other = hostinfo.fingerprint()
    assert other["fingerprint"] != here["fingerprint"]
    with pytest.raises(SystemExit) as e:
        pipeline.host_check(FakeCfg(), other, str(record))
    err = capsys.readouterr().err
    assert e.value.code == 1 and err.count("\n") == 1
    assert f"cores {here['cores']} -> 64" in err and "kernel" in err and "9.9.9-other" in err
    assert "host_change=remeasure" in err and "mv results results-" in err
    assert json.loads(record.read_text())["fingerprint"] == here["fingerprint"]   # untouched
    pipeline.host_check(FakeCfg("remeasure"), other, str(record))
    assert json.loads(record.read_text())["fingerprint"] == other["fingerprint"]


def test_the_fingerprint_names_the_virtualization_stack():
    fp = hostinfo.fingerprint()
    assert set(hostinfo.IDENTITY) <= set(fp) and set(fp["stack"]) == set(hostinfo.STACK_PACKAGES)
    assert fp["stack"]["qemu-system-x86"]          # installed by install.sh
