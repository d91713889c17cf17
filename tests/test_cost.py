"""The CPU cost of the work (isobench.cost) on cells whose true cost is known."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from isobench import cost

T0 = datetime(2026, 1, 1, tzinfo=UTC)


UNTIMED = {"point": "", "point_seconds": math.nan, "point_cpu_busy_s": math.nan, "point_env_cpu_s": math.nan,
           "point_subject": ""}


def cells(rng: np.random.Generator, *, env_cost: float, rounds: int = 8, kind: str = "compression",
          values: dict[str, float] | None = None) -> pd.DataFrame:
    """native and lxc, each round one cell of 2 measured iterations (+1 warm-up) of 10 s; native keeps
    1.0 host CPU busy, lxc env_cost times that, each with 3 % noise per round; lxc's own cgroup
    time is 90 % of its host time. No sweep points are timed."""
    rows = []
    for r in range(1, rounds + 1):
        drift = rng.normal(1, 0.05)                  # the host drifts: both envs of a round alike
        for i, (env, factor) in enumerate((("native", 1.0), ("lxc", env_cost))):
            start = T0 + timedelta(minutes=10 * r + i)
            busy = 10.0 * factor * drift * rng.normal(1, 0.03)
            for it in (1, 2, 3):
                for metric, value in (values or {"throughput": 100.0}).items():
                    rows.append({"env": env, "workload": "w", "kind": kind, "round": r, "iteration": it,
                                 "warmup": it == 1, "metric": metric, "value": value, "emulated": False,
                                 "started_at": start + timedelta(seconds=10 * it),
                                 "ended_at": start + timedelta(seconds=10 * it + 10),
                                 "cpu_user_s": busy * 0.6, "cpu_system_s": busy * 0.3, "cpu_softirq_s": busy * 0.1,
                                 "cpu_steal_s": 5.0, "env_cpu_s": 0.9 * busy if env == "lxc" else math.nan,
                                 **UNTIMED})
    return pd.DataFrame(rows)


def swept(rng: np.random.Generator, *, cores: dict[str, dict[str, float]], rounds: int = 8) -> pd.DataFrame:
    """A MySQL-like sweep: each iteration runs the points threads=1 and threads=8 for 5 s each, timed
    per subject ``read_only``; ``cores[env][point]`` host CPUs busy at that point (3 % noise, the
    round's drift shared by both environments); lxc's own time is 80 % of it. Two metrics per point."""
    rows = []
    for r in range(1, rounds + 1):
        drift = rng.normal(1, 0.05)
        for i, env in enumerate(cores):
            start = T0 + timedelta(minutes=10 * r + i)
            for it in (1, 2, 3):
                busy = {p: 5.0 * c * drift * rng.normal(1, 0.03) for p, c in cores[env].items()}
                total = sum(busy.values())
                for p, b in busy.items():
                    for metric in ("read_only_tps", "read_only_lat_avg"):
                        rows.append({"env": env, "workload": "m", "kind": "mysql", "round": r, "iteration": it,
                                     "warmup": it == 1, "metric": metric, "value": 1.0, "emulated": False,
                                     "started_at": start + timedelta(seconds=10 * it),
                                     "ended_at": start + timedelta(seconds=10 * it + 10),
                                     "cpu_user_s": total, "cpu_system_s": 0.0, "cpu_softirq_s": 0.0,
                                     "cpu_steal_s": 0.0, "env_cpu_s": 0.8 * total if env == "lxc" else math.nan,
                                     "point": p, "point_seconds": 5.0, "point_cpu_busy_s": b,
                                     "point_env_cpu_s": 0.8 * b if env == "lxc" else math.nan,
                                     "point_subject": "read_only"})
    return pd.DataFrame(rows)


def row(table, env, metric):
    return next(r for r in table if r["env"] == env and r["metric"] == metric)


def test_the_cost_ratio_recovers_a_known_cost_paired_per_round():
    rng = np.random.default_rng(7)
    table = cost.cost_table(cells(rng, env_cost=1.5), {}, baseline="native")
    lxc = row(table, "lxc", "host_cpu_cores")
    assert lxc["ratio_ci_low"] < 1.5 < lxc["ratio_ci_high"] and lxc["ratio_ci_low"] > 1.3
    # steal is not work: 1.0 core busy on native, whatever the hypervisor took
    native = row(table, "native", "host_cpu_cores")
    assert 0.9 < native["mean"] < 1.1 and native["ratio_note"] == "the baseline"
    # the environment's own time, only where it can be told apart
    assert math.isclose(row(table, "lxc", "env_cpu_cores")["mean"], 0.9 * lxc["mean"], rel_tol=1e-9)
    assert not any(r["env"] == "native" and r["metric"] == "env_cpu_cores" for r in table)
    assert row(table, "lxc", "env_cpu_cores")["ratio_note"] == "native has no env_cpu_cores"


def test_equal_cost_is_not_called_a_difference():
    """A/A-like: the same cost; the per-round pairing removes the host's 5 % drift."""
    rng = np.random.default_rng(11)
    hits = sum(not (r["ratio_ci_low"] <= 1 <= r["ratio_ci_high"])
               for r in (row(cost.cost_table(cells(rng, env_cost=1.0), {}, baseline="native"), "lxc",
                             "host_cpu_cores") for _ in range(100)))
    assert hits <= 12        # 5 % expected: 5 of 100; 12 is > 3 SD above


def test_network_bandwidth_cost_per_gbit():
    """Both directions at 8 and 4 Gbit/s for 1 s each: 12 Gbit moved per iteration."""
    rng = np.random.default_rng(3)
    c = cells(rng, env_cost=2.0, kind="net_bandwidth", values={"to_env": 8.0, "from_env": 4.0})
    table = cost.cost_table(c, {"w": {"seconds": 1}}, baseline="native")
    native, lxc = row(table, "native", "cpu_s_per_gbit"), row(table, "lxc", "cpu_s_per_gbit")
    assert 10 / 12 * 0.9 < native["mean"] < 10 / 12 * 1.1
    assert lxc["ratio_ci_low"] < 2.0 < lxc["ratio_ci_high"]
    assert native["unit"] == "CPU s/Gbit" and "not cycles" in native["basis"]


def test_no_interval_below_the_minimum_rounds():
    rng = np.random.default_rng(5)
    lxc = row(cost.cost_table(cells(rng, env_cost=1.5, rounds=3), {}, baseline="native"), "lxc", "host_cpu_cores")
    assert math.isnan(lxc["ratio_ci_low"]) and "no interval" in lxc["ratio_note"]


def test_sweep_points_get_their_own_cost():
    """lxc costs 1.2x native at threads=1 and 2x at threads=8: each point's ratio recovers its own
    cost, the whole iteration's lies between, and the point rows name the subject they cover."""
    rng = np.random.default_rng(13)
    c = swept(rng, cores={"native": {"threads=1": 0.5, "threads=8": 1.5}, "lxc": {"threads=1": 0.6, "threads=8": 3.0}})
    table = cost.cost_table(c, {}, baseline="native")

    def at(env, point, metric="host_cpu_cores"):
        return next(r for r in table if r["env"] == env and r["point"] == point and r["metric"] == metric)

    for point, true_ratio, native_cores in (("threads=1", 1.2, 0.5), ("threads=8", 2.0, 1.5)):
        lxc, native = at("lxc", point), at("native", point)
        assert lxc["subject"] == "read_only" and lxc["n_rounds"] == 8
        assert lxc["ratio_ci_low"] < true_ratio < lxc["ratio_ci_high"], (point, lxc)
        assert native_cores * 0.9 < native["mean"] < native_cores * 1.1
        assert math.isclose(at("lxc", point, "env_cpu_cores")["mean"], 0.8 * lxc["mean"], rel_tol=1e-9)
    whole = at("lxc", "")
    assert whole["subject"] == "" and at("lxc", "threads=8")["ratio_ci_low"] > whole["ratio"] > 1.2
    # one row per (env, point, metric): the two metrics of a point share one timing
    keys = [(r["env"], r["point"], r["metric"]) for r in table]
    assert len(keys) == len(set(keys))
