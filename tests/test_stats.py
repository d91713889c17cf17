"""Statistics and aggregation on synthetic cells that follow schema.SCHEMA exactly (the synthetic
run of tests/synthetic.py, aggregated once per session by conftest.py's ``synthetic_run``)."""

from __future__ import annotations

import math
import random
import sys
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
from isobench.schema import SCHEMA

from synthetic import ENVS, ITERATIONS, ROUNDS, WARMUPS, agg_outputs, cell_table


@pytest.fixture
def run(synthetic_run) -> dict:
    return synthetic_run


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
