"""Statistics and aggregation on synthetic cells that follow schema.SCHEMA exactly.

The synthetic run (``make_run``) is shared with test_report.py and test_paper.py: a native baseline
and an identical native_again (an A/A pair), three LXC environments (bridge, NAT, volume), a KVM
environment, an emulated (TCG) KVM environment and an unavailable LXC one; a compression workload,
a fio random-read workload with latency percentiles, a Redis-like sweep over connections, and a
net_latency workload whose native cells are missing.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from isobench import aggregate as agg
from isobench import rounds, stats
from isobench.collect import NO_POINT
from isobench.schema import SCHEMA

# -- the synthetic run -----------------------------------------------------------------------------
HOST_CPU = {"accel": "none", "emulated": False}
KVM_SETTINGS = {"driver": "kvm", "tuning": "tuned", "cpus": 2, "memory_mib": 2048}
#: env -> (driver, settings as in the manifest, labels)
ENVS = {
    "native": ("native", {"driver": "native"}, HOST_CPU),
    "native_again": ("native", {"driver": "native"}, HOST_CPU),
    "lxc_bridge": ("lxc", {"driver": "lxc", "net": "bridge", "storage": "rootfs"}, HOST_CPU),
    "lxc_nat": ("lxc", {"driver": "lxc", "net": "nat", "storage": "rootfs"}, HOST_CPU),
    "lxc_volume": ("lxc", {"driver": "lxc", "net": "bridge", "storage": "volume"}, HOST_CPU),
    "kvm": ("kvm", KVM_SETTINGS, {"accel": "kvm", "emulated": False}),
    "kvm_tcg": ("kvm", KVM_SETTINGS, {"accel": "tcg", "emulated": True}),
}
UNAVAILABLE = {"lxc_host": ("lxc", {"driver": "lxc", "net": "host", "storage": "rootfs"}, "lxc-start not found")}

#: workload -> (kind, params, {metric: (unit, higher_is_better, native value)}, points)
WORKLOADS = {
    "compression": ("compression", {"threads": 2, "level": 2, "corpus_mib": 64, "seed": 1},
                    {"throughput": ("MB/s", True, 100.0)}, [""]),
    "fio_randread": ("fio", {"rw": "randread", "bs": "4k", "iodepth": 16, "numjobs": 1, "size_mib": 256,
                             "runtime_s": 10, "rwmixread": 70},
                     {"read_iops": ("IOPS", True, 20000.0), "read_bw": ("MB/s", True, 80.0),
                      "read_lat_p50": ("µs", False, 300.0), "read_lat_p99": ("µs", False, 450.0)}, [""]),
    "redis": ("redis", {"requests": 10000},
              {"set_rps": ("requests/s", True, 50000.0)}, ["connections=1", "connections=10", "connections=50"]),
    "net_latency": ("net_latency", {"protocol": "tcp", "seconds": 5},
                    {"latency": ("µs", False, 40.0)}, [""]),
}

#: env -> factor on the native value, in "performance" terms (0.9 = 10 % slower)
SPEED = {"native": 1.0, "native_again": 1.0, "lxc_bridge": 0.9, "lxc_nat": 0.995, "lxc_volume": 0.97,
         "kvm": 0.8, "kvm_tcg": 0.05}
#: relative noise of each env (lxc_nat is noisy, so its 0.5 % difference is not significant)
NOISE = {"lxc_nat": 0.08}
REDIS_SPEED = {"lxc_nat": 0.7, "lxc_bridge": 0.95}
ROUNDS, ITERATIONS, WARMUPS = 6, 5, 1
#: every environment of a round shares the round's host speed (drift): the pairing must remove it
ROUND_DRIFT = 0.05
T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def _value(env: str, wl: str, metric: str, point: str, hib: bool, native: float, rng: np.random.Generator,
           warmup: bool, drift: float = 1.0) -> float:
    speed = (REDIS_SPEED.get(env, SPEED[env]) if wl == "redis" else SPEED[env]) * drift
    if point.partition("=")[2].isdigit():
        native = native * min(1.0, int(point.split("=")[1]) / 10)
    v = native * speed if hib else native / speed
    v *= 1 + NOISE.get(env, 0.002) * rng.standard_normal()
    return v * (0.5 if hib else 2.0) if warmup else v   # warm-ups are far off: they must not count


SENTINEL = {"steal_pct": 0.1, "busy_pct": 60.0, "host_cpu_s": 12.0, "cpu_user_s": 8.0, "cpu_system_s": 3.0,
            "cpu_softirq_s": 0.9, "cpu_steal_s": 0.1, "env_cpu_s": 10.0, "procs_running": 2.0, "load1": 1.5,
            "cpu_mhz": 2000.0, "canary_start_s": 0.1, "canary_end_s": 0.101, "cell_seconds": 100.0, **NO_POINT}


def cell_table(env: str, wl: str, rnd: int, **sentinel) -> pa.Table:
    """One cell's rows, built with schema.SCHEMA; ``sentinel`` overrides the host readings."""
    driver, settings, labels = ENVS[env]
    kind, params, metrics, points = WORKLOADS[wl]
    rng = stats.group_rng(7, env, wl, rnd)
    drift = 1 + ROUND_DRIFT * stats.group_rng(7, "drift", wl, rnd).standard_normal()
    rows = []
    own_cpu = {"env_cpu_s": math.nan} if driver == "native" else {}   # native: the host's own counters
    for it in range(1, WARMUPS + ITERATIONS + 1):
        warm = it <= WARMUPS
        start = T0 + timedelta(minutes=10 * rnd, seconds=20 * it)
        for point in points:
            for metric, (unit, hib, native) in metrics.items():
                rows.append({
                    "env": env, "driver": driver, "workload": wl, "kind": kind, "round": rnd, "iteration": it,
                    "warmup": warm, "point": point, "metric": metric,
                    "value": _value(env, wl, metric, point, hib, native, rng, warm, drift),
                    "unit": unit, "higher_is_better": hib, "started_at": start,
                    "ended_at": start + timedelta(seconds=15), "tool_version": f"{kind} 1.0",
                    "host": "testhost", "host_fingerprint": "abc123", "accel": labels["accel"],
                    "emulated": labels["emulated"],
                    "image_key": "img1", "settings": json.dumps(settings, sort_keys=True),
                    **{**SENTINEL, **own_cpu, **sentinel}})
    return pa.Table.from_pylist(rows, schema=SCHEMA)


POLICY = {"min_rounds": ROUNDS, "max_rounds": ROUNDS, "budget_s": 3600.0, "target_pct": 2.0,
          "max_steal_pct": 5.0, "max_canary_change_pct": 30.0}
PRIMARY = {"compression": {"throughput"}, "fio_randread": {"read_iops"}, "redis": {"set_rps"},
           "net_latency": {"latency"}}


def manifest(env: str) -> dict:
    if env in UNAVAILABLE:
        driver, settings, reason = UNAVAILABLE[env]
        return {"env": env, "driver": driver, "available": False, "reason": reason,
                "labels": {"accel": "none", "emulated": False}, "settings": settings}
    driver, settings, labels = ENVS[env]
    return {"env": env, "driver": driver, "available": True, "reason": "", "labels": labels, "settings": settings}


def warmup_record(env: str) -> dict:
    driver, settings, labels = ENVS[env]
    return {"env": env, "driver": driver, "labels": labels, "settings": settings,
            "host": {"cpu_model": "Synthetic CPU @ 2.0GHz", "cores": 2, "memory_mib": 7900, "kernel": "6.1.0-test",
                     "cgroup_layout": "v2", "virtualization": "kvm_pvm", "fingerprint": "abc123",
                     "hostname": "testhost", "arch": "x86_64"},
            "inside": {"nproc": 2, "mem_mib": 2000 if driver != "native" else 7900, "kernel": "6.1.0-test",
                       "cpu_model": "Synthetic CPU @ 2.0GHz", "cgroup_mem": "max"},
            "tools": {k: f"{k} 1.0" for k, *_ in WORKLOADS.values()}, "started_at": T0.isoformat()}


def make_run(root: Path) -> dict:
    """Write the synthetic run under root; return the paths the stages take."""
    cells = []
    for env in ENVS:
        for wl in WORKLOADS:
            if wl == "net_latency" and env in ("native", "native_again"):
                continue  # the baseline's cells of this workload are missing
            for rnd in range(1, ROUNDS + 1):
                p = root / "cells" / env / wl / f"round-{rnd}.parquet"
                p.parent.mkdir(parents=True, exist_ok=True)
                pq.write_table(cell_table(env, wl, rnd), p)
                cells.append(p)
    all_cells = agg.read_cells(cells)
    batches = []
    for wl in WORKLOADS:
        record = rounds.decide(all_cells, POLICY, workload=wl, rounds_measured=ROUNDS, baseline="native",
                               primary=PRIMARY.get(wl, set()), emulated={"kvm_tcg"})
        p = root / "rounds" / wl / "batch-0.json"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(record))
        batches.append(p)
    manifests, warmups = [], []
    for env in [*ENVS, *UNAVAILABLE]:
        p = root / "provision" / f"{env}.json"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(manifest(env)))
        manifests.append(p)
        if env in ENVS:
            w = root / "warmup" / f"{env}.json"
            w.parent.mkdir(parents=True, exist_ok=True)
            w.write_text(json.dumps(warmup_record(env)))
            warmups.append(w)
    doc = {"_run": {"profile": "quick", "seed": 20150329,
                    "rounds": {"min": ROUNDS, "max": ROUNDS, "budget_minutes": 60}, "iterations": ITERATIONS,
                    "warmup_iterations": WARMUPS, "baseline": "native",
                    "environments": [*ENVS, *UNAVAILABLE], "workloads": list(WORKLOADS),
                    "limits": {"cpus": 2, "memory_mib": 2048}}}
    for wl, (kind, params, metrics, _) in WORKLOADS.items():
        doc[wl] = {"kind": kind, "description": f"synthetic {kind}", "params": params,
                   "metrics": {m: {"unit": u, "higher_is_better": h, "description": f"{m} (synthetic)"}
                               for m, (u, h, _) in metrics.items()},
                   "rerun": f"snakemake --cores 1 all --forcerun results/raw/*/{wl}/round-*"}
    wj = root / "provision" / "workloads.json"
    wj.write_text(json.dumps(doc))
    return {"cells": cells, "manifests": manifests, "warmups": warmups, "workloads": wj, "batches": batches}


def agg_outputs(out: Path) -> agg.Outputs:
    """The aggregate stage's named outputs under one folder (file names of the tests' choosing:
    the pipeline's are those rules/aggregate.smk declares)."""
    return agg.Outputs.of({f.name: out / (f.name.removesuffix("_csv") + ".csv" if f.name.endswith("_csv")
                                          else f.name + ".parquet") for f in dataclasses.fields(agg.Outputs)})


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("run")
    paths = make_run(root)
    out = root / "aggregate"
    agg.aggregate(paths["cells"], paths["manifests"], agg_outputs(out), batches=paths["batches"],
                  workloads_json=paths["workloads"])
    return {**paths, "out": out, "summary": pd.read_parquet(out / "summary.parquet"),
            "precision": pd.read_parquet(out / "precision.parquet"),
            "overhead": pd.read_parquet(out / "overhead.parquet"),
            "calibration": pd.read_parquet(out / "calibration.parquet")}


def _row(df: pd.DataFrame, **kw) -> pd.Series:
    sel = df
    for k, v in kw.items():
        sel = sel[sel[k] == v]
    assert len(sel) == 1, f"{kw}: {len(sel)} rows"
    return sel.iloc[0]


# -- stats on known data ---------------------------------------------------------------------------
@pytest.mark.parametrize("n", [0, 1, 2])
def test_small_n_has_no_interval(n):
    r = stats.ratio_of_medians(np.full(n, 3.0), np.full(5, 3.0), stats.group_rng(1, "r"))
    assert math.isnan(r.ci_low) and not r.significant and r.note


def test_zero_baseline_makes_ratio_undefined():
    r = stats.ratio_of_medians([1.0, 1.0, 1.0], [0.0, 0.0, 0.0], stats.group_rng(1, "z"))
    assert math.isnan(r.ratio) and "0" in r.note


def test_tight_ratio_of_09_is_significant():
    rng = np.random.default_rng(3)
    base = 100 * (1 + 0.002 * rng.standard_normal(10))
    env = 90 * (1 + 0.002 * rng.standard_normal(10))
    r = stats.ratio_of_medians(env, base, stats.group_rng(1, "t"), 2000)
    assert r.ratio == pytest.approx(0.9, abs=0.005)
    assert r.ci_low < r.ratio < r.ci_high < 1 and r.significant
    assert stats.overhead_pct(r.ratio, True) == pytest.approx(10, abs=0.5)
    assert stats.effect_words(stats.overhead_pct(r.ratio, True)).endswith("% slower than native")


def test_overlapping_data_is_not_significant():
    rng = np.random.default_rng(4)
    base = 100 * (1 + 0.05 * rng.standard_normal(10))
    env = 99 * (1 + 0.05 * rng.standard_normal(10))
    r = stats.ratio_of_medians(env, base, stats.group_rng(1, "o"), 2000)
    assert r.ci_low < 1 < r.ci_high and not r.significant


def test_direction_for_lower_is_better_metrics():
    # latency 20 % higher than native: ratio 1.2 is 20 % slower; 0.8 is 20 % faster
    assert stats.overhead_pct(1.2, higher_is_better=False) == pytest.approx(20)
    assert stats.overhead_pct(0.8, higher_is_better=False) == pytest.approx(-20)
    assert stats.overhead_pct(1.2, higher_is_better=True) == pytest.approx(-20)
    assert stats.effect_words(20.0) == "20.0% slower than native"
    assert stats.effect_words(-20.0, "bare") == "20.0% faster than bare"
    assert stats.overhead_interval(0.85, 0.95, True) == pytest.approx((5, 15))
    assert stats.overhead_interval(1.1, 1.3, False) == pytest.approx((10, 30))


def test_outliers_tukey():
    mask = stats.outlier_mask([10, 10.1, 9.9, 10.0, 10.2, 30])
    assert mask.tolist() == [False] * 5 + [True]
    assert not stats.outlier_mask([1, 100, 1]).any()  # too few to judge


def test_group_rng_depends_only_on_key():
    a = stats.group_rng(5, "native", "x").random(3)
    stats.group_rng(5, "other").random(10)
    assert np.array_equal(a, stats.group_rng(5, "native", "x").random(3))
    assert not np.array_equal(a, stats.group_rng(6, "native", "x").random(3))


# -- aggregation -----------------------------------------------------------------------------------
def test_warmups_excluded(run):
    s = _row(run["summary"], env="native", workload="compression", metric="throughput")
    assert s["n"] == ROUNDS * ITERATIONS and s["n_warmup"] == ROUNDS * WARMUPS and s["n_rounds"] == ROUNDS
    cells = pd.read_parquet(run["out"] / "cells.parquet")
    sel = cells[(cells.env == "native") & (cells.workload == "compression")]
    per_cell = sel[~sel.warmup].groupby("round")["value"].median()
    assert s["mean"] == pytest.approx(per_cell.mean()) and s["median"] == pytest.approx(per_cell.median())
    assert s["mean"] == pytest.approx(100, rel=0.05)  # the warm-ups (50) did not pull it down
    # the interval is over cells (rounds), so it is as wide as the rounds' drift makes it
    assert s["ci_low"] < s["mean"] < s["ci_high"] and (s["ci_high"] - s["ci_low"]) / s["mean"] > 0.02
    assert not sel[sel.warmup].outlier.any()


def test_cells_parquet_keeps_schema(run):
    table = pq.read_table(run["out"] / "cells.parquet")
    assert table.schema.names == SCHEMA.names + ["outlier", "flagged"]
    for f in SCHEMA:
        assert table.schema.field(f.name).type == f.type
    assert table.num_rows == sum(pq.read_metadata(p).num_rows for p in run["cells"])


def test_overhead_math_and_direction(run):
    o = run["overhead"]
    slow = _row(o, env="lxc_bridge", workload="compression", metric="throughput")
    assert slow["ratio"] == pytest.approx(0.9, abs=0.01) and slow["significant"]
    assert slow["overhead_pct"] == pytest.approx(10, abs=1) and "slower than native" in slow["effect"]
    assert slow["ratio_ci_low"] < slow["ratio"] < slow["ratio_ci_high"]
    noisy = _row(o, env="lxc_nat", workload="compression", metric="throughput")
    assert not noisy["significant"] and "not significant" in noisy["effect"]
    lat = _row(o, env="kvm", workload="fio_randread", metric="read_lat_p99")  # latency = native / 0.8
    assert lat["ratio"] == pytest.approx(1.25, abs=0.02) and lat["overhead_pct"] == pytest.approx(25, abs=2)
    assert "slower" in lat["effect"] and not lat["higher_is_better"]
    iops = _row(o, env="kvm", workload="fio_randread", metric="read_iops")
    assert iops["overhead_pct"] == pytest.approx(20, abs=2) and "slower" in iops["effect"]


def test_emulated_never_a_kvm_overhead(run):
    o = run["overhead"]
    emu = o[o["env"] == "kvm_tcg"]
    assert len(emu) and not emu["comparable"].any() and emu["emulated"].all()
    assert (emu["reason"] == agg.EMULATED_REASON).all()
    assert emu["effect"].str.startswith("emulated (TCG), not a KVM figure").all()
    real = o[o["env"] == "kvm"]
    assert real["comparable"].all() and not real["effect"].str.contains("emulated").any()


def test_missing_baseline_gives_no_overhead_rows(run):
    assert "net_latency" in set(run["summary"]["workload"])
    assert "net_latency" not in set(run["overhead"]["workload"])


def test_aa_calibration_sets_noise_floor(run):
    """The noise floor is the A/A interval's half-width at the row's own n (#25: on the scale of the
    interval it is compared with; it used to be the 95th percentile of single-round differences)."""
    c = run["calibration"]
    assert set(zip(c["env_a"], c["env_b"])) == {("native", "native_again")}
    row = _row(c, workload="compression", metric="throughput")
    x, y, _ = rounds.paired(rounds.cell_values(agg.read_cells(run["cells"])), "native_again", "native",
                            "throughput", "")
    p95 = (math.exp(np.percentile(np.abs(np.log(x / y)), 95)) - 1) * 100
    assert row["p95_diff_pct"] == pytest.approx(p95)
    assert row["noise_floor_pct"] == pytest.approx(row["halfwidth_pct"]) and 0 < row["noise_floor_pct"] < 2
    assert row["n"] == ROUNDS and not row["significant"]
    o = _row(run["overhead"], env="lxc_volume", workload="compression", metric="throughput")
    assert o["n"] == row["n"] and o["noise_floor_pct"] == pytest.approx(row["noise_floor_pct"])
    assert not o["within_noise_floor"] and o["decision"] == "slower"
    again = _row(run["overhead"], env="native_again", workload="compression", metric="throughput")
    assert again["within_noise_floor"]
    o = run["overhead"]
    assert not (o["within_noise_floor"] & (o["significant"] | o["decision"].isin(["slower", "faster"]))).any()


def test_aa_pairs_need_identical_settings_and_labels():
    ms = {e: {"env": e, **{k: v for k, v in zip(("driver", "settings", "labels"), ENVS[e])}, "available": True}
          for e in ENVS}
    # kvm and kvm_tcg share settings but not labels (accel): not an A/A pair
    assert agg.aa_pairs(ms) == [("native", "native_again")]


def test_deterministic_and_order_independent(run, tmp_path):
    shuffled = list(run["cells"])
    random.Random(1).shuffle(shuffled)
    out2 = tmp_path / "again"
    agg.aggregate(shuffled, list(reversed(run["manifests"])), agg_outputs(out2),
                  batches=list(reversed(run["batches"])), workloads_json=run["workloads"])
    for name in ("cells.parquet", "summary.parquet", "summary.csv", "overhead.parquet", "overhead.csv",
                 "calibration.parquet", "calibration.csv", "precision.parquet", "precision.csv",
                 "paper.parquet", "paper.csv", "missing.parquet", "missing.csv", "aa_check.parquet",
                 "aa_check.csv", "environments.parquet", "environments.csv"):
        assert (run["out"] / name).read_bytes() == (out2 / name).read_bytes(), name


def test_stats_parameters_stored(run):
    meta = agg.read_metadata(run["out"] / "overhead.parquet")
    assert meta["seed"] == 20150329 and meta["aa_pairs"] == [["native", "native_again"]]
    assert "t-interval" in meta["ci_method"] and "Benjamini-Hochberg" in meta["fdr"]
    assert "Tukey" in meta["outlier_rule"]
    assert "repeated confidence interval" in meta["ci_method"] and "geometric mean" in meta["estimator"]


def test_overhead_decisions_follow_the_sequential_interval(run):
    """The contract columns: the interval the row reports is the one its decision uses, wider than
    the fixed-n t-interval of the same rounds (rounds.max = 6 here)."""
    o = run["overhead"]
    assert set(o["decision"]) <= {"same", "slower", "faster", "undecided", "no interval"}
    assert (o["margin_pct"] == 5.0).all()
    decided = o["decision"].isin(["same", "slower", "faster"])
    assert o.loc[decided, "settle_rounds"].isna().all() and (o.loc[~decided, "settle_rounds"] >= 1).all()
    slow = _row(o, env="lxc_bridge", workload="compression", metric="throughput")
    assert slow["decision"] == "slower" and slow["decision_text"].startswith("slower by 10")
    aa = _row(o, env="native_again", workload="compression", metric="throughput")
    assert aa["decision"] == "same" and aa["decision_text"] == "same as native within ±5 %"
    x, y, _ = rounds.paired(rounds.cell_values(agg.read_cells(run["cells"])), "lxc_nat", "native",
                            "throughput", "")
    fixed = stats.paired_ratio(x, y)
    nat = _row(o, env="lxc_nat", workload="compression", metric="throughput")
    assert nat["ratio"] == pytest.approx(fixed.ratio)
    assert nat["ratio_ci_low"] < fixed.ci_low and nat["ratio_ci_high"] > fixed.ci_high
    has = o["overhead_ci_low"].notna()
    assert has.any() and ((o.loc[has, "overhead_ci_low"] <= o.loc[has, "overhead_pct"])
                          & (o.loc[has, "overhead_pct"] <= o.loc[has, "overhead_ci_high"])).all()


def test_rejects_foreign_parquet(tmp_path):
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"x": [1]}), bad)
    with pytest.raises(ValueError, match="missing columns"):
        agg.aggregate([bad], [], agg_outputs(tmp_path / "out"))


def test_no_inputs_writes_empty_tables(tmp_path):
    agg.aggregate([], [], agg_outputs(tmp_path / "out"))
    s = pd.read_parquet(tmp_path / "out" / "summary.parquet")
    assert len(s) == 0 and list(s.columns) == list(agg.SUMMARY_COLUMNS)
    assert (tmp_path / "out" / "overhead.csv").read_text().startswith("env,baseline,")


def test_single_iteration_cells_flow_through(tmp_path):
    """One round of one iteration: no interval anywhere, said so, and the ratio is still reported."""
    files = []
    for env in ("native", "lxc_bridge"):
        t = cell_table(env, "compression", 1)
        t = t.filter(pc.less_equal(t["iteration"], WARMUPS + 1))
        p = tmp_path / f"{env}.parquet"
        pq.write_table(t, p)
        files.append(p)
    agg.aggregate(files, [], agg_outputs(tmp_path / "out"))
    s = pd.read_parquet(tmp_path / "out" / "summary.parquet")
    assert (s["n"] == 1).all() and s["ci_low"].isna().all() and s["ci_note"].str.contains("no interval").all()
    o = _row(pd.read_parquet(tmp_path / "out" / "overhead.parquet"), env="lxc_bridge")
    assert o["ratio"] == pytest.approx(0.9, abs=0.01) and math.isnan(o["ratio_ci_low"])
    assert not o["significant"] and "no interval" in o["effect"]


def test_the_report_tables_are_aggregate_outputs(run):
    """Missing results, the paper comparison, the A/A check and the environments' status are
    computed here, for the report to read."""
    missing = pd.read_parquet(run["out"] / "missing.parquet")
    cells = missing[missing["scope"] == "cell"]
    assert set(zip(cells["env"], cells["workload"])) == {("native", "net_latency"), ("native_again", "net_latency")}
    assert sorted(cells.loc[cells["env"] == "native", "round"]) == list(range(1, ROUNDS + 1))
    gap = _row(missing, scope="baseline")
    assert gap["workload"] == "net_latency" and "baseline cells are missing" in gap["reason"]
    paper = pd.read_parquet(run["out"] / "paper.parquet")
    assert len(paper) == len(run["overhead"]) and agg.read_metadata(run["out"] / "paper.parquet")["paper_tolerance"]
    assert set(paper.loc[paper["env"] == "kvm_tcg", "verdict"]) == {"not comparable"}
    aa = pd.read_parquet(run["out"] / "aa_check.parquet")
    assert len(aa) == 1 and aa["judged"].iloc[0] <= aa["comparisons"].iloc[0] == len(run["calibration"])
    envs = pd.read_parquet(run["out"] / "environments.parquet").set_index("env")
    assert envs.loc["kvm_tcg", "emulated"] and not envs.loc["lxc_host", "available"]
    assert envs.loc["lxc_nat", "paper_configs"].startswith("Docker, Docker NAT")


def test_missing_cells_are_only_the_planned_pairs():
    """A pair run.environments_for leaves out is not missing; a planned one without results is, as
    is every pair of a workload the key does not name (and every pair without the key at all)."""
    from isobench import compare
    summary = pd.DataFrame({"env": ["native", "native", "lxc_host", "lxc_host"], "workload": ["a", "b", "a", "b"],
                            "rounds": ["1,2", "1,2", "1", "1,2"]})
    manifests = {e: {"available": True} for e in ("native", "lxc_host", "lxc_nat")}
    run = {"environments": ["native", "lxc_host", "lxc_nat"], "workloads": ["a", "b"]}

    def missing(run):
        rows = compare.missing_table(summary, manifests, run, {}, {"a": 2, "b": 2}, {}, "native")
        return {(r["env"], r["workload"], r["round"]) for r in rows}

    assert missing({**run, "environments_for": {"a": ["native", "lxc_host"], "b": ["native", "lxc_host"]}}) == {
        ("lxc_host", "a", 2)}
    assert missing({**run, "environments_for": {"b": ["native", "lxc_host"]}}) == {
        ("lxc_host", "a", 2), ("lxc_nat", "a", 1), ("lxc_nat", "a", 2)}
    assert missing(run) == {("lxc_host", "a", 2), *(("lxc_nat", w, r) for w in "ab" for r in (1, 2))}
