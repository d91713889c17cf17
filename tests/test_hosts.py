"""Several hosts: per-host overheads and the pooled estimate of a hardware group, on simulated data
whose true answer is known.

The simulation is tests/synthetic.py's noise model: every cell (one fresh instance) has its own level
(7 % between-cell CV), the iterations inside it vary less (2 %), the host drifts between rounds (5 %,
moving every environment of the round alike). On top, each host has its own speed (``level``),
which moves its native and its environments alike: pairing across hosts would mistake it for an
overhead. Many simulated runs go into one frame as many workloads, so one call of the pipeline's
function analyses all of them (and the test stays fast).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from isobench import aggregate, hosts, rounds, stats

from synthetic import cell_iterations, round_drift

ITERATIONS = 3
T0 = pd.Timestamp("2026-12-01T10:00:00Z")
N_SIM = 500
#: a 500-draw binomial at p = 0.95 has SD 0.0097: 3 SDs
TOL = 0.03


def simulate(rng: np.random.Generator, spec: dict[str, tuple[float, int, float]], workload: str = "w") -> list[dict]:
    """Cell-iteration rows of native and lxc on each host: host -> (true ratio lxc/native, rounds,
    host speed). Rounds are numbered 1..n on every host."""
    rows = []
    for host, (ratio, n_rounds, level) in spec.items():
        drift = round_drift(rng, n_rounds)
        for env, true in (("native", 1.0), ("lxc", ratio)):
            values = cell_iterations(rng, drift, ITERATIONS, 100 * level * true)
            for r in range(n_rounds):
                for i in range(ITERATIONS):
                    rows.append({"host": host, "env": env, "workload": workload, "metric": "m", "point": "",
                                 "round": r + 1, "warmup": False, "value": values[r, i], "unit": "ops/s",
                                 "higher_is_better": True, "emulated": False,
                                 "started_at": T0 + pd.Timedelta(minutes=r)})
    return rows


def run(rng: np.random.Generator, n_sim: int, spec_of) -> tuple[pd.DataFrame, dict[str, dict]]:
    """n_sim simulated runs as workloads s0..s<n-1>; spec_of(i) gives run i's spec."""
    specs = {f"s{i:03d}": spec_of(i) for i in range(n_sim)}
    rows = [row for wl, spec in specs.items() for row in simulate(rng, spec, wl)]
    return hosts.host_values(pd.DataFrame(rows)), specs


PRIMARY = {"w": {"m"}}


def pool(values: pd.DataFrame, members: list[str]) -> pd.DataFrame:
    return hosts.pooled(values, baseline="native", groups={h: "g" for h in members}, primary={})


# -- per host ----------------------------------------------------------------------------------------
def test_per_host_recovers_each_host_and_never_pairs_across_hosts():
    """Host b is 1.5x faster than host a (native and lxc alike) and has a different overhead:
    each host's interval covers its own true ratio; pairing a's lxc with b's native (same round
    numbers) would give about 1.05 / 1.5 = 0.7."""
    rng = np.random.default_rng(2015)
    values = hosts.host_values(pd.DataFrame(simulate(rng, {"a": (1.05, 20, 1.0), "b": (1.20, 20, 1.5)})))
    out = hosts.per_host(values, baseline="native", primary=PRIMARY, groups={"a": "g", "b": "g"})
    assert list(out.columns) == list(hosts.PER_HOST_COLUMNS)
    by = out.set_index("host")
    for host, true in (("a", 1.05), ("b", 1.20)):
        r = by.loc[host]
        assert r["n"] == 20 and r["ratio_ci_low"] <= true <= r["ratio_ci_high"], (host, r["ratio"])
        assert abs(r["ratio"] / true - 1) < 0.05 and r["primary"] and r["group"] == "g"
        assert r["overhead_pct"] == pytest.approx((1 - r["ratio"]) * 100)
        assert r["overhead_ci_low"] == pytest.approx((1 - r["ratio_ci_high"]) * 100)
    assert not (by.loc["a", "ratio_ci_low"] <= 1.20 <= by.loc["a", "ratio_ci_high"])

    # b without its native: no row for b (a's native is not b's), a's row unchanged
    no_b_native = values[~((values["host"] == "b") & (values["env"] == "native"))]
    out2 = hosts.per_host(no_b_native, baseline="native", primary=PRIMARY)
    assert list(out2["host"]) == ["a"]
    assert out2.iloc[0]["ratio"] == by.loc["a", "ratio"] and out2.iloc[0]["group"] == ""


def test_per_host_is_the_single_host_overhead():
    """Host by host, the same numbers as aggregate.overhead on that host's values alone."""
    rng = np.random.default_rng(7)
    values = hosts.host_values(pd.DataFrame(simulate(rng, {"a": (0.9, 6, 1.0), "b": (0.8, 4, 2.0)})))
    out = hosts.per_host(values, baseline="native", primary=PRIMARY).set_index("host")
    for host in ("a", "b"):
        v = values[values["host"] == host]
        summary = v.drop_duplicates(["env", "workload", "metric", "point"]).assign(
            driver="d", kind="k", accel="none", host_fingerprint="f")
        ref = aggregate.overhead(v, summary, baseline="native", targets={}, primary=PRIMARY, aa_envs=set()).iloc[0]
        for col in ("n", "ratio", "ratio_ci_low", "ratio_ci_high", "ci_note", "sd_log", "halfwidth_pct",
                    "overhead_pct", "overhead_ci_low", "overhead_ci_high", "median", "median_baseline"):
            assert out.loc[host, col] == pytest.approx(ref[col], nan_ok=True) if col != "ci_note" else \
                out.loc[host, col] == ref[col], (host, col)
    assert math.isnan(out.loc["b", "ratio_ci_low"]) and "4 rounds < 5" in out.loc["b", "ci_note"]


def test_pairing_is_rounds_paired_host_by_host():
    """The one-merge pairing gives what rounds.paired gives on each host's values alone, also with
    missing cells, a re-measured cell (started two days later: beyond max_pair_gap_s) and a host
    without the baseline for one metric."""
    rng = np.random.default_rng(4)
    rows = simulate(rng, {"a": (0.9, 8, 1.0), "b": (0.8, 6, 2.0)})
    rows += [{**r, "metric": "lat", "higher_is_better": False, "unit": "us"} for r in rows
             if not (r["host"] == "b" and r["env"] == "native")]
    cells = pd.DataFrame(rows)
    late = (cells["host"] == "a") & (cells["env"] == "lxc") & cells["round"].isin([2, 3])
    cells.loc[late, "started_at"] += pd.Timedelta(days=2)
    cells = cells[~((cells["host"] == "b") & (cells["env"] == "lxc") & (cells["round"] == 4))]
    values = hosts.host_values(cells)
    got = hosts.comparisons(values, baseline="native", gaps={"w": 3600.0})
    assert [(c.host, c.metric) for c in got] == [("a", "lat"), ("a", "m"), ("b", "m")]
    for c in got:
        x, y, common = rounds.paired(values[values["host"] == c.host], c.env, "native", c.metric, c.point,
                                     max_gap_s=3600.0)
        assert np.array_equal(c.x, x) and np.array_equal(c.y, y), c
    assert [c.x.size for c in got] == [6, 6, 5]
    assert not got[0].higher_is_better and got[0].unit == "us"


# -- pooled over identical hosts ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def identical():
    """500 runs of 4 identical hosts (true ratio 1.10), with 5, 8, 3 and 1 rounds: the 3-round host
    has no interval of its own but contributes, the 1-round host is left out."""
    rng = np.random.default_rng(20150329)
    spec = {"a": (1.10, 5, 1.0), "b": (1.10, 8, 1.3), "c": (1.10, 3, 0.8), "d": (1.10, 1, 1.1)}
    values, _ = run(rng, N_SIM, lambda i: spec)
    return pool(values, ["a", "b", "c", "d"])


def test_pooled_fixed_interval_covers_the_true_ratio_at_its_nominal_rate(identical):
    out = identical
    assert len(out) == N_SIM and list(out.columns) == list(hosts.POOLED_COLUMNS)
    assert (out["n_hosts"] == 3).all() and (out["hosts"] == "a,b,c").all() and (out["n_rounds"] == 16).all()
    assert (out["left_out"] == "d (1 rounds)").all() and out["ci_note"].str.contains("left out").all()
    covered = ((out["ratio_ci_low"] <= 1.10) & (out["ratio_ci_high"] >= 1.10)).mean()
    assert abs(covered - 0.95) <= TOL, f"fixed coverage {covered:.3f}"
    # hosts of this kind are identical here: that interval is conservative, never narrower
    covered_re = ((out["ratio_re_ci_low"] <= 1.10) & (out["ratio_re_ci_high"] >= 1.10)).mean()
    assert covered_re >= 0.95 - TOL and (out["halfwidth_re_pct"] >= out["halfwidth_pct"]).all()
    # the estimate is unbiased in log space
    assert abs(np.log(out["ratio"]).mean() - math.log(1.10)) < 0.005
    print(f"identical hosts: fixed coverage {covered:.3f}, random-effect coverage {covered_re:.3f}")


def test_heterogeneity_is_uniform_under_identical_hosts(identical):
    p = identical["het_p_value"].to_numpy()
    fp = float((p < 0.05).mean())
    assert abs(fp - 0.05) <= TOL, f"heterogeneity false-positive rate {fp:.3f}"
    assert sps.kstest(p, "uniform").pvalue > 0.01
    print(f"identical hosts: heterogeneity false-positive rate {fp:.3f}")


def test_heterogeneity_is_found_when_hosts_differ():
    """Hosts at 1.00, 1.10, 1.20, 10 rounds each: the F-test's power is about 0.93 here."""
    rng = np.random.default_rng(3)
    spec = {"a": (1.00, 10, 1.0), "b": (1.10, 10, 1.0), "c": (1.20, 10, 1.0)}
    values, _ = run(rng, 200, lambda i: spec)
    out = pool(values, ["a", "b", "c"])
    power = float((out["het_p_value"] < 0.05).mean())
    assert power >= 0.85 and out["het_p_value"].median() < 0.01, power
    # the between-host SD, net of the rounds' noise, is near the true one (SD of 0, log 1.1, log 1.2)
    assert out["tau_log"].median() == pytest.approx(np.std(np.log([1.0, 1.1, 1.2]), ddof=1), rel=0.3)
    print(f"hosts differ: heterogeneity detected in {power:.3f}")


def test_random_effect_interval_is_for_hosts_of_this_kind():
    """Hosts drawn from a population (true log ratio ~ N(log 1.1, 0.05^2)): the random-effect
    interval covers the population's ratio at its nominal rate, the fixed one covers the mean of
    these hosts' true ratios at its rate, but not the population's."""
    rng = np.random.default_rng(11)
    host_logs = math.log(1.1) + 0.05 * rng.standard_normal((N_SIM, 4))
    values, specs = run(rng, N_SIM, lambda i: {h: (math.exp(host_logs[i, j]), 8, 1.0)
                                               for j, h in enumerate("abcd")})
    out = pool(values, list("abcd")).set_index("workload")
    these = pd.Series({wl: math.exp(host_logs[i].mean()) for i, wl in enumerate(specs)})
    fixed_these = ((out["ratio_ci_low"] <= these) & (these <= out["ratio_ci_high"])).mean()
    fixed_pop = ((out["ratio_ci_low"] <= 1.1) & (out["ratio_ci_high"] >= 1.1)).mean()
    re_pop = ((out["ratio_re_ci_low"] <= 1.1) & (out["ratio_re_ci_high"] >= 1.1)).mean()
    assert abs(fixed_these - 0.95) <= TOL and re_pop >= 0.95 - TOL and fixed_pop < 0.85, \
        (fixed_these, re_pop, fixed_pop)
    print(f"random hosts: fixed covers these hosts {fixed_these:.3f}, the population {fixed_pop:.3f}; "
          f"random-effect covers the population {re_pop:.3f}")


def test_two_hosts_random_effect_is_wider_and_says_so():
    rng = np.random.default_rng(5)
    values, _ = run(rng, 200, lambda i: {"a": (0.9, 10, 1.0), "b": (0.9, 10, 1.2)})
    out = pool(values, ["a", "b"])
    assert (out["df_re"] == 1).all() and out["re_ci_note"].str.contains("2 hosts: 1 df").all()
    assert ((out["ratio_re_ci_low"] < out["ratio_ci_low"]) & (out["ratio_re_ci_high"] > out["ratio_ci_high"])).all()
    assert (out["halfwidth_re_pct"] > 2 * out["halfwidth_pct"]).mean() > 0.5
    assert out["ci_note"].eq("").all()
    covered = ((out["ratio_ci_low"] <= 0.9) & (out["ratio_ci_high"] >= 0.9)).mean()
    assert abs(covered - 0.95) <= 0.05, covered          # 200 draws: SD 0.015


# -- the rules ---------------------------------------------------------------------------------------
def test_pool_log_ratios_by_hand():
    d = {"a": np.array([0.1, 0.2, 0.3, 0.2]), "b": np.array([0.0, 0.1]), "c": np.array([0.5])}
    p = hosts.pool_log_ratios(d)
    m, v = np.array([0.2, 0.05]), np.array([np.var(d["a"], ddof=1) / 4, np.var(d["b"], ddof=1) / 2])
    se = math.sqrt(v.sum()) / 2
    df = v.sum() ** 2 / (v[0] ** 2 / 3 + v[1] ** 2 / 1)
    assert p.hosts == ("a", "b") and p.left_out == (("c", 1),) and p.n_rounds == 6
    assert p.ratio == pytest.approx(math.exp(m.mean())) and p.df == pytest.approx(df)
    assert p.ci_high == pytest.approx(math.exp(m.mean() + sps.t.ppf(0.975, df) * se))
    se_re = max(np.std(m, ddof=1) / math.sqrt(2), se)
    assert p.re_ci_low == pytest.approx(math.exp(m.mean() - sps.t.ppf(0.975, 1) * se_re))
    assert p.het_p_value == pytest.approx(sps.f_oneway(d["a"], d["b"]).pvalue)
    assert p.sd_between_log == pytest.approx(np.std(m, ddof=1))
    assert p.tau_log == pytest.approx(math.sqrt(max(0, np.var(m, ddof=1) - v.mean())))


def test_too_few_rounds_or_hosts_give_no_interval():
    few = hosts.pool_log_ratios({"a": np.array([0.1, 0.2]), "b": np.array([0.0, 0.1])})
    assert few.n_rounds == 4 and math.isnan(few.ci_low) and math.isnan(few.re_ci_low)
    assert "4 rounds < 5" in few.note and math.isfinite(few.ratio) and math.isfinite(few.het_p_value)
    one = hosts.pool_log_ratios({"a": np.arange(6) / 10, "b": np.array([0.3])})
    assert one.hosts == ("a",) and math.isnan(one.ci_low) and "1 host" in one.note
    exact = hosts.pool_log_ratios({"a": np.full(5, 0.1), "b": np.full(5, 0.2)})   # no noise at all
    assert exact.het_p_value == 0.0 and exact.ci_low == exact.ci_high == pytest.approx(math.exp(0.15))


def test_groups_pool_only_their_own_hosts():
    rng = np.random.default_rng(9)
    spec = {"a": (1.1, 6, 1.0), "b": (1.1, 6, 1.0), "c": (2.0, 6, 1.0), "x": (3.0, 6, 1.0)}
    values = hosts.host_values(pd.DataFrame(simulate(rng, spec)))
    out = hosts.pooled(values, baseline="native", groups={"a": "g1", "b": "g1", "c": "g2", "x": ""},
                       primary=PRIMARY)
    assert list(out["group"]) == ["g1"] and out.iloc[0]["hosts"] == "a,b" and bool(out.iloc[0]["primary"])
    assert out.iloc[0]["overhead_pct"] == pytest.approx((1 - out.iloc[0]["ratio"]) * 100)
    lo, hi = stats.overhead_interval(out.iloc[0]["ratio_re_ci_low"], out.iloc[0]["ratio_re_ci_high"], True)
    assert (out.iloc[0]["overhead_re_ci_low"], out.iloc[0]["overhead_re_ci_high"]) == pytest.approx((lo, hi))
    # a host whose baseline is missing does not count as a host of the comparison
    no_b = values[~((values["host"] == "b") & (values["env"] == "native"))]
    assert hosts.pooled(no_b, baseline="native", groups={"a": "g1", "b": "g1"}, primary=PRIMARY).empty


def test_empty_input_keeps_columns_and_dtypes():
    empty = hosts.host_values(pd.DataFrame(simulate(np.random.default_rng(0), {})[:0],
                                           columns=["host", *rounds.CELL_KEY, "warmup", "value", "unit",
                                                    "higher_is_better", "emulated", "started_at"]))
    ph = hosts.per_host(empty, baseline="native", primary={})
    po = hosts.pooled(empty, baseline="native", groups={"a": "g"}, primary={})
    for df, cols in ((ph, hosts.PER_HOST_COLUMNS), (po, hosts.POOLED_COLUMNS)):
        assert df.empty and list(df.columns) == list(cols)
        assert dict(df.dtypes) == dict(aggregate._frame([], cols).dtypes)
