"""The CPU cost of the work (the paper's Figure 3 and its MySQL CPU plots): what the host spent,
per iteration, while an environment did the same work.

From every measured iteration's /proc/stat deltas (the interference sentinel's readings, one set
per iteration, see :mod:`isobench.sentinel`) and, where the environment can be told apart from the
host, its own CPU time (the LXC container's cgroup, the KVM guest's QEMU process and vhost workers):

* ``host_cpu_cores``: host CPU seconds in user, system and softirq (steal, idle and iowait left out)
  per wall second of the iteration: how many of the host's CPUs the work kept busy, the client
  side included;
* ``env_cpu_cores``: the environment's own CPU seconds per wall second (none for native);
* ``cpu_s_per_gbit`` (network bandwidth only): host CPU seconds per Gbit moved, both directions of
  an iteration together (CPU time, not cycles: hardware counters are not read here).

These are whole-iteration rows (``point`` empty). Workloads that time their sweep points
(``Context.point``: MySQL per test and thread count, Redis per connection count) also get
``host_cpu_cores`` and ``env_cpu_cores`` per point (``point`` e.g. ``threads=8``; ``subject`` the
metrics the timing covers, e.g. ``read_only``, empty = all): the paper's CPU utilisation per point.

A cell's value is the median over its measured iterations; the absolute figure is the mean over
cells with its t-interval, and the cost against native is paired per round exactly as the
overheads are (:func:`isobench.stats.paired_ratio`: the geometric mean of the per-round ratios,
with the sequential interval of :mod:`isobench.decision` where the workload's rounds stopped on
the data, since the cost is read from the same rounds; no interval below ``MIN_ROUNDS_CI`` rounds).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from . import stats

#: cost metric -> (unit, description)
METRICS = {
    "host_cpu_cores": ("cores", "host CPUs busy (user + system + softirq) per wall second, client included"),
    "env_cpu_cores": ("cores", "the environment's own CPU time (container cgroup, guest QEMU) per wall second"),
    "cpu_s_per_gbit": ("CPU s/Gbit", "host CPU seconds per Gbit moved (both directions of an iteration)"),
}
BANDWIDTH_KIND = "net_bandwidth"

COST_COLUMNS = {
    "env": "string", "baseline": "string", "workload": "string", "kind": "string", "point": "string",
    "subject": "string", "metric": "string",
    "unit": "string", "emulated": "bool", "n_rounds": "int64", "mean": "float64", "ci_low": "float64",
    "ci_high": "float64", "ci_note": "string", "ratio": "float64", "ratio_ci_low": "float64",
    "ratio_ci_high": "float64", "ratio_note": "string", "basis": "string",
}
BASIS = "CPU time from /proc/stat and cgroup/process counters (not cycles: hardware counters not read)"


LONG = ["env", "workload", "kind", "round", "emulated", "started_at", "point", "subject", "metric", "value"]


def iteration_costs(cells: pd.DataFrame, params: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per measured iteration (and timed sweep point) and cost metric: the columns of
    ``LONG``. ``params``: workload -> its parameters (for the bandwidth volume)."""
    m = cells[~cells["warmup"]]
    if m.empty:
        return pd.DataFrame(columns=LONG)
    key = ["env", "workload", "round", "iteration"]
    it = m.drop_duplicates(key).set_index(key)
    seconds = (it["ended_at"] - it["started_at"]).dt.total_seconds().where(lambda s: s > 0)
    busy = it["cpu_user_s"] + it["cpu_system_s"] + it["cpu_softirq_s"]
    cols = {"host_cpu_cores": busy / seconds, "env_cpu_cores": it["env_cpu_s"] / seconds}
    bw = m[m["kind"] == BANDWIDTH_KIND]
    if not bw.empty:
        secs = bw["workload"].map(lambda w: float(params.get(w, {}).get("seconds", math.nan)))
        gbit = (bw["value"] * secs).groupby([bw[k] for k in key]).sum()
        cols["cpu_s_per_gbit"] = busy / gbit.reindex(busy.index)
    out = []
    for metric, values in cols.items():
        df = it[["kind", "emulated", "started_at"]].assign(point="", subject="", metric=metric,
                                                           value=values.astype(float))
        out.append(df.reset_index())
    out.append(point_costs(m))
    long = pd.concat(out, ignore_index=True)
    return long[np.isfinite(long["value"].astype(float))][LONG]


def point_costs(measured: pd.DataFrame) -> pd.DataFrame:
    """host_cpu_cores and env_cpu_cores of every timed sweep point of the measured rows (LONG columns)."""
    timed = measured[measured["point_seconds"] > 0]
    if timed.empty:
        return pd.DataFrame(columns=LONG)
    pt = timed.drop_duplicates(["env", "workload", "round", "iteration", "point", "point_subject"])
    base = pt[["env", "workload", "kind", "round", "emulated", "started_at", "point"]].assign(
        subject=pt["point_subject"])
    return pd.concat([base.assign(metric="host_cpu_cores", value=pt["point_cpu_busy_s"] / pt["point_seconds"]),
                      base.assign(metric="env_cpu_cores", value=pt["point_env_cpu_s"] / pt["point_seconds"])],
                     ignore_index=True)[LONG]


def cost_table(cells: pd.DataFrame, params: dict[str, dict[str, Any]], *, baseline: str,
               gaps: dict[str, float] | None = None, horizons: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """Per environment x workload x cost metric: the mean over cells with its interval and the cost
    against the baseline paired per round (rounds whose two cells started more than the workload's
    pairing gap apart are not paired, as for the overheads; ``horizons``: workload -> rounds.max, for
    the sequential interval of rounds that stopped on the data)."""
    gaps, horizons = gaps or {}, horizons or {}
    it = iteration_costs(cells, params)
    if it.empty:
        return []
    what = ["workload", "point", "subject", "metric"]
    per_cell = it.groupby(["env", *what, "round"], sort=True).agg(
        value=("value", "median"), kind=("kind", "first"), emulated=("emulated", "first"),
        started_at=("started_at", "min")).reset_index()
    by_what = dict(iter(per_cell[per_cell["env"] == baseline].groupby(what, sort=False)))
    rows = []
    for (env, wl, point, subject, metric), g in per_cell.groupby(["env", *what], sort=True):
        mean, lo, hi, note = stats.mean_interval(g["value"].to_numpy(np.float64))
        row = {"env": env, "baseline": baseline, "workload": wl, "kind": g["kind"].iloc[0], "point": point,
               "subject": subject, "metric": metric, "unit": METRICS[metric][0],
               "emulated": bool(g["emulated"].iloc[0]), "n_rounds": len(g),
               "mean": mean, "ci_low": lo, "ci_high": hi, "ci_note": note, "ratio": math.nan,
               "ratio_ci_low": math.nan, "ratio_ci_high": math.nan, "ratio_note": "", "basis": BASIS}
        base = by_what.get((wl, point, subject, metric), per_cell.iloc[:0])
        if env == baseline:
            row["ratio_note"] = "the baseline"
        elif base.empty:
            row["ratio_note"] = f"{baseline} has no {metric}"
        else:
            a, b = g.set_index("round"), base.set_index("round")
            common = sorted(set(a.index) & set(b.index))
            gap = gaps.get(wl, math.inf)
            common = [r for r in common
                      if abs((a.loc[r, "started_at"] - b.loc[r, "started_at"]).total_seconds()) <= gap]
            ps = stats.paired_ratio(a.loc[common, "value"].to_numpy(np.float64),
                                    b.loc[common, "value"].to_numpy(np.float64), horizon=horizons.get(wl))
            row.update(ratio=ps.ratio, ratio_ci_low=ps.ci_low, ratio_ci_high=ps.ci_high, ratio_note=ps.note)
        rows.append(row)
    return rows
