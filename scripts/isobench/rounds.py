"""Rounds: how many a workload gets, and which of them count.

A round measures one workload on each of its environments (every environment, unless
``run.environments_for`` names fewer) back to back, in an order drawn at random per round
(:func:`round_order`); each cell reduces to one value per metric and sweep point, the median of
its measured iterations (:func:`cell_values`). Overheads are paired per round
(:func:`isobench.stats.paired_ratio`).

Rounds are added in batches until every comparison of the workload's primary metrics (each
environment against the baseline, per sweep point) is decided (:mod:`isobench.decision`: *same*
within the margin, *slower* or *faster*), or its interval reached the precision target (the 95 %
CI half-width in % of the ratio), or a cap stops it: ``rounds.max`` rounds, or the time budget.
:func:`decide` is that rule, a pure function of the measured cells: a batch starts with
``rounds.min`` rounds; after each batch the rounds each open comparison still needs are estimated
from its observed paired SD (:func:`isobench.decision.settle_rounds`, and the rounds to the
target) and the next batch adds that many, but never more than half the rounds already usable (so
a noisy early estimate cannot overshoot the need by more than 1.5x), nor more than the caps
allow; it measures only the baseline and the environments whose comparison is still open
(``measure``), the A/A environment included while its own calibration is open. The intervals are
the sequential ones (horizon ``rounds.max``), so stopping on a decision keeps their coverage.

The interference sentinel flags a whole round (never one cell, so the pairing survives) when one of
its cells saw more host steal time than ``sentinel.max_steal_pct`` in a measured iteration, or its
host canary changed by more than ``sentinel.max_canary_change_pct`` between the cell's start and end.
Flagged rounds do not count; the next batch replaces them.

Emulated environments (KVM under TCG) never hold the workload's rounds back and are not in
``measure`` after the minimum rounds: their figures are not KVM figures, and emulation noise
would set the cost of the run.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from . import decision, stats
from .order import round_order  # noqa: F401  (the order rounds are measured in)

#: the margin when the policy names none (the CPU and memory default)
DEFAULT_MARGIN_PCT = 5.0
CELL_KEY = ["env", "workload", "metric", "point", "round"]


def cell_values(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per cell x metric x point: the median of the measured iterations (``value``), with
    the cell's direction, unit and labels."""
    m = cells[~cells["warmup"]]
    if m.empty:
        return pd.DataFrame(columns=[*CELL_KEY, "value", "unit", "higher_is_better", "emulated", "iterations",
                                     "started_at"])
    g = m.groupby(CELL_KEY, sort=True)
    out = g.agg(value=("value", "median"), unit=("unit", "first"), higher_is_better=("higher_is_better", "first"),
                emulated=("emulated", "first"), iterations=("value", "size"), started_at=("started_at", "min"))
    return out.reset_index()


def flagged_rounds(cells: pd.DataFrame, *, max_steal_pct: float,
                   max_canary_change_pct: float) -> dict[tuple[str, int], str]:
    """(workload, round) -> why the sentinel flagged it (see the module doc)."""
    out: dict[tuple[str, int], str] = {}
    if cells.empty:
        return out
    m = cells[~cells["warmup"]]
    for (wl, rnd, env), g in m.groupby(["workload", "round", "env"], sort=True):
        steal = float(np.nanmax(g["steal_pct"])) if g["steal_pct"].notna().any() else math.nan
        c0, c1 = float(g["canary_start_s"].iloc[0]), float(g["canary_end_s"].iloc[0])
        change = abs(c1 / c0 - 1) * 100 if c0 > 0 and math.isfinite(c1) else math.nan
        why = []
        if math.isfinite(steal) and steal > max_steal_pct:
            why.append(f"{env}: steal {steal:.1f}% > {max_steal_pct:g}%")
        if math.isfinite(change) and change > max_canary_change_pct:
            why.append(f"{env}: host canary changed {change:.0f}% > {max_canary_change_pct:g}%")
        if why:
            key = (str(wl), int(rnd))
            out[key] = "; ".join(filter(None, [out.get(key, ""), *why]))
    return out


def paired(values: pd.DataFrame, env: str, baseline: str, metric: str, point: str,
           exclude: set[int] = frozenset(), max_gap_s: float = math.inf) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Aligned per-round values of env and baseline for one metric and point: the rounds both have,
    less ``exclude`` and less every round whose two cells started more than ``max_gap_s`` apart (a
    cell re-measured alone, after a failure or a changed setting, is not paired with a baseline
    cell taken hours or days earlier: new rounds measure it with a fresh baseline)."""
    v = values[(values["metric"] == metric) & (values["point"] == point)]
    a = v[v["env"] == env].set_index("round")
    b = v[v["env"] == baseline].set_index("round")
    common = sorted(set(a.index) & set(b.index) - set(exclude))
    if math.isfinite(max_gap_s) and common:
        gap = (a.loc[common, "started_at"] - b.loc[common, "started_at"]).abs().dt.total_seconds()
        common = [r for r, g in zip(common, gap) if g <= max_gap_s]
    return (a.loc[common, "value"].to_numpy(np.float64), b.loc[common, "value"].to_numpy(np.float64), common)


def unpaired_rounds(values: pd.DataFrame, baseline: str, max_gap_s: float) -> list[tuple[str, int, float]]:
    """(env, round, gap in s) of every round whose env cell and baseline cell both exist but started
    more than ``max_gap_s`` apart, so :func:`paired` drops the pair (the missing table lists them)."""
    if not math.isfinite(max_gap_s) or values.empty:
        return []
    first = values.groupby(["env", "round"], sort=True)["started_at"].min()
    if baseline not in first.index.get_level_values(0):
        return []
    base = first.loc[baseline]
    out = []
    for (env, rnd), t in first.items():
        if env != baseline and rnd in base.index:
            gap = abs((t - base.loc[rnd]).total_seconds())
            if gap > max_gap_s:
                out.append((str(env), int(rnd), gap))
    return out


def precision_groups(values: pd.DataFrame, *, baseline: str, primary: set[str], emulated: set[str],
                     exclude: set[int], max_gap_s: float = math.inf, horizon: int | None = None,
                     margin_pct: float = DEFAULT_MARGIN_PCT) -> list[dict[str, Any]]:
    """Every (environment, primary metric, point) that decides: its paired SD, the half-width of
    its sequential interval (``horizon`` = rounds.max; None: the fixed-n t-interval) and its
    decision (:mod:`isobench.decision`) against ``margin_pct``."""
    rows = []
    keys = values[["env", "metric", "point"]].drop_duplicates().itertuples(index=False)
    hib = values.drop_duplicates("metric").set_index("metric")["higher_is_better"].astype(bool).to_dict() \
        if len(values) else {}
    for env, metric, point in sorted(keys):
        if env == baseline or env in emulated or metric not in primary:
            continue
        x, y, common = paired(values, env, baseline, metric, point, exclude, max_gap_s)
        ps = stats.paired_ratio(x, y, min_rounds=2, horizon=horizon)
        h = horizon or max(ps.n, decision.FIRST_LOOK)
        lo, hi = (math.log(ps.ci_low), math.log(ps.ci_high)) if ps.has_ci and ps.n >= decision.FIRST_LOOK \
            else (math.nan, math.nan)
        word = str(decision.decide_arrays(lo, hi, margin_pct, hib.get(metric, True)))
        mean = math.log(ps.ratio) if math.isfinite(ps.ratio) and ps.ratio > 0 else math.nan
        settle = math.nan if word in decision.DECIDED else float(decision.settle_rounds(mean, ps.sd_log, ps.n,
                                                                                       margin_pct, h))
        if word == decision.NO_INTERVAL and ps.n < decision.FIRST_LOOK:
            settle = max(settle if math.isfinite(settle) else 0.0, float(decision.FIRST_LOOK - ps.n))
        rows.append({"env": env, "metric": metric, "point": point, "n": ps.n, "sd_log": ps.sd_log,
                     "halfwidth_pct": ps.halfwidth_pct, "ratio": ps.ratio,
                     "ci_low": ps.ci_low if word != decision.NO_INTERVAL else math.nan,
                     "ci_high": ps.ci_high if word != decision.NO_INTERVAL else math.nan,
                     "decision": word, "margin_pct": float(margin_pct), "settle_rounds": settle,
                     "higher_is_better": bool(hib.get(metric, True))})
    return rows


def batch_size(usable, min_rounds: int, deficit, fewest):
    """The rounds the next batch wants (vectorised over numpy arrays, for the simulation tests):
    up to ``min_rounds`` first; then the largest ``deficit`` of the open comparisons, but never
    more than half the rounds there are (a noisy early SD cannot overshoot by > 1.5x), except to
    bring a comparison with too few pairs (``fewest``, re-measured alone) up to the minimum."""
    floor = max(min_rounds, stats.MIN_ROUNDS_CI)
    usable, deficit, fewest = np.asarray(usable), np.asarray(deficit), np.asarray(fewest)
    grow = np.maximum(1, np.minimum(deficit, np.maximum(np.ceil(usable / 2), floor - fewest)))
    return np.where(usable < min_rounds, min_rounds - usable, grow).astype(np.int64)


def is_open(g: dict[str, Any], target_pct: float) -> bool:
    """Whether a comparison still wants rounds: undecided and not yet as precise as the target, or
    without an interval for want of rounds (not for want of variance: quantised values)."""
    if g["decision"] == decision.UNDECIDED:
        return not (math.isfinite(g["halfwidth_pct"]) and g["halfwidth_pct"] <= target_pct)
    return g["decision"] == decision.NO_INTERVAL and g["n"] < decision.FIRST_LOOK


def decide(cells: pd.DataFrame, policy: dict[str, Any], *, workload: str, rounds_measured: int,
           baseline: str, primary: set[str], emulated: set[str],
           environments: list[str] | None = None) -> dict[str, Any]:
    """After ``rounds_measured`` rounds of ``workload``: done (and why), or how many rounds to add
    and on which environments (``measure``); ``comparisons``: every primary comparison's decision.

    ``policy`` (config.RoundPolicy.as_dict): min_rounds, max_rounds (also the horizon of the
    sequential intervals), budget_s, target_pct, margin_pct, the sentinel's thresholds and
    max_pair_gap_s. ``environments``: the workload's environments (what the minimum rounds
    measure; None: those with cells so far)."""
    cells = cells[cells["workload"] == workload]
    flags = flagged_rounds(cells, max_steal_pct=policy["max_steal_pct"],
                           max_canary_change_pct=policy["max_canary_change_pct"])
    flagged = {r: why for (w, r), why in flags.items() if w == workload}
    values = cell_values(cells)
    usable = rounds_measured - len(flagged)
    target = float(policy["target_pct"])
    margin = float(policy.get("margin_pct", DEFAULT_MARGIN_PCT))
    horizon = max(int(policy["max_rounds"]), rounds_measured)
    groups = precision_groups(values, baseline=baseline, primary=primary, emulated=emulated,
                              exclude=set(flagged), max_gap_s=float(policy.get("max_pair_gap_s", math.inf)),
                              horizon=horizon, margin_pct=margin)
    for g in groups:
        to_target = float(decision.rounds_to_target(g["sd_log"], g["n"], target, horizon))
        more = [x for x in (to_target, g["settle_rounds"]) if math.isfinite(x)]
        g["needed"] = g["n"] + int(min(more)) if more and g["n"] >= 2 else None
    worst = max(groups, key=lambda g: (g["halfwidth_pct"] if math.isfinite(g["halfwidth_pct"]) else math.inf),
                default=None)
    per_cell = cells.drop_duplicates(["env", "round"])["cell_seconds"]
    used_s = float(per_cell.sum()) if len(per_cell) else 0.0
    per_round_s = used_s / rounds_measured if rounds_measured else 0.0
    unmet = [g for g in groups if is_open(g, target)]
    comparisons = [{"env": g["env"], "metric": g["metric"], "point": g["point"], "n": g["n"],
                    "decision": g["decision"], "ratio": g["ratio"], "ci_low": g["ci_low"], "ci_high": g["ci_high"],
                    "margin_pct": g["margin_pct"], "settle_rounds": g["settle_rounds"],
                    "settle_s": g["settle_rounds"] * per_round_s if per_round_s else math.nan,
                    "open": g in unmet} for g in groups]
    record: dict[str, Any] = {
        "workload": workload, "rounds": rounds_measured, "usable": usable,
        "flagged": {str(r): why for r, why in sorted(flagged.items())}, "target_pct": target, "margin_pct": margin,
        "groups": groups, "worst": worst, "comparisons": comparisons,
        "measure": sorted({baseline, *(g["env"] for g in unmet)}),
        "seconds": round(used_s, 1), "per_round_s": round(per_round_s, 1),
        "policy": dict(policy), "primary": sorted(primary), "done": True, "stop": "", "next": 0,
    }
    if usable >= policy["min_rounds"] and not unmet:
        if not groups:
            record["stop"] = "nothing to decide (no paired primary metric)"
        elif all(g["decision"] in decision.DECIDED for g in groups):
            record["stop"] = "decided"
        else:  # undecided ones precise to the target (a margin narrower than the target), or no variance
            record["stop"] = "target met"
        record["measure"] = []
        return record
    if usable < policy["min_rounds"]:
        # the minimum is for every environment of the workload, the emulated ones included
        seen = set(values["env"]) if len(values) else set()
        record["measure"] = sorted({baseline, *(environments if environments is not None else seen)})
    floor = max(policy["min_rounds"], stats.MIN_ROUNDS_CI)
    # rounds each open comparison still lacks: up to the minimum, then what its SD says
    deficits = [max(floor, g["needed"] or floor) - g["n"] for g in unmet]
    fewest = min((g["n"] for g in groups), default=usable)
    want = int(batch_size(usable, policy["min_rounds"], max(deficits, default=1), fewest))
    room = policy["max_rounds"] - rounds_measured
    if room <= 0:
        record.update(stop="max rounds", measure=[])
        return record
    add = min(want, room)
    if per_round_s > 0:
        afford = math.floor((policy["budget_s"] - used_s) / per_round_s)
        if afford <= 0:
            record.update(stop="time budget", measure=[])
            return record
        add = min(add, afford)
    record.update(done=False, next=int(add))
    return record
