"""What the aggregate stage derives for the report besides the statistics: the paper comparison, the
missing results and each environment's status. The report only reads these tables.

* :func:`paper_table`: one row per overhead row with the paper's ratio beside ours and the verdict
  (the rule and the columns: :mod:`isobench.paper`, :data:`isobench.paper.COMPARISON_COLUMNS`);
* :func:`missing_table`: the results that are not there, see :data:`MISSING_COLUMNS`. ``scope``
  ``cell``: a cell of an available environment in a round its workload measured that has no
  results (failed, or not run; the rounds the sentinel flagged are not missing, they are listed
  with the precision; a pair the run does not plan, an environment outside its workload's
  ``run.environments_for`` list, is not missing); ``pair``: a cell of a round whose baseline cell
  started more than the pairing gap earlier or later (re-measured alone), so the pair is dropped;
  ``baseline``: a workload with results but none of the baseline, so no
  overhead is computed for it (``reason`` says why; ``env`` is the baseline, ``round`` 0);
* :func:`aa_check`: whether the A/A comparisons came out significant no more often than chance
  allows (one row, see :data:`AA_CHECK_COLUMNS`): of the ``judged`` A/A comparisons with an
  interval, ``significant`` excluded 1; ``expected`` is the mean and ``limit`` the 95th percentile
  of that count under a sign-flip null over rounds that keeps the comparisons of one workload
  together (they share cells, so their false alarms are correlated); up to ``limit`` is
  ``within_chance``; more means the intervals are too narrow for this host;
* :func:`environments_table`: per environment (every manifest and every environment with
  results) its driver, availability, whether its CPU is emulated (by its manifest's labels or by
  any of its results), whether it has results, and the paper configurations it stands for, see
  :data:`ENVIRONMENT_COLUMNS`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from . import decision
from . import paper as paperlib

MISSING_COLUMNS = {"scope": "string", "env": "string", "workload": "string", "round": "int64", "reason": "string"}
MISSING_CELL_REASON = "no results (failed, or not run)"

AA_CHECK_COLUMNS = {"comparisons": "int64", "judged": "int64", "significant": "int64", "confidence": "float64",
                    "expected": "float64", "limit": "float64", "within_chance": "bool", "method": "string"}
#: sign flips drawn for the A/A chance check's null distribution
AA_DRAWS = 2000

ENVIRONMENT_COLUMNS = {"env": "string", "driver": "string", "available": "bool", "reason": "string",
                       "emulated": "bool", "has_results": "bool", "paper_configs": "string"}


def paper_table(overhead: pd.DataFrame, manifests: dict[str, dict[str, Any]],
                workloads: dict[str, dict[str, Any]], paper: paperlib.Paper) -> pd.DataFrame:
    """Every overhead row against the paper (isobench.paper.compare)."""
    return paperlib.compare(overhead, manifests, workloads, paper)


def emulated_envs(summary: pd.DataFrame, manifests: dict[str, dict[str, Any]]) -> set[str]:
    """Emulated by its manifest's labels or by any of its result rows."""
    by_rows = set(summary.loc[summary["emulated"].astype(bool), "env"])
    by_labels = {e for e, m in manifests.items() if (m.get("labels") or {}).get("emulated")}
    return by_rows | by_labels


def environments_table(summary: pd.DataFrame, manifests: dict[str, dict[str, Any]],
                       paper: paperlib.Paper) -> list[dict[str, Any]]:
    """One row per environment, sorted by name (the report orders them for reading)."""
    with_results = set(summary["env"])
    drivers = {r.env: str(r.driver) for r in summary.drop_duplicates("env").itertuples()}
    emulated = emulated_envs(summary, manifests)
    rows = []
    for env in sorted(set(manifests) | with_results):
        m = manifests.get(env)
        configs = ""
        if m is not None and env not in emulated:
            facts = paperlib.env_facts(m)
            configs = ", ".join(c.label for c in paper.configurations.values() if paperlib.matches(c.match, facts))
        rows.append({"env": env, "driver": str(m.get("driver", "")) if m is not None else drivers.get(env, ""),
                     "available": bool((m or {}).get("available", env in with_results)),
                     "reason": (m or {}).get("reason", ""), "emulated": env in emulated,
                     "has_results": env in with_results, "paper_configs": configs})
    return rows


def missing_table(summary: pd.DataFrame, manifests: dict[str, dict[str, Any]], run: dict[str, Any],
                  workloads: dict[str, dict[str, Any]], rounds_measured: dict[str, int],
                  flagged: dict[str, dict[int, str]], baseline: str,
                  unpaired: dict[str, list[tuple[str, int, float]]] | None = None,
                  measured_in: dict[str, dict[str, list[int]]] | None = None) -> list[dict[str, Any]]:
    """Missing cells (in the run's order of environments and workloads, then by round), then the
    pairs dropped because their two cells started too far apart (``unpaired``: workload -> (env,
    round, gap in s), :func:`isobench.rounds.unpaired_rounds`), then the workloads without
    baseline results (by name). Only the planned pairs count: each workload's environments from
    ``run["environments_for"]`` (absent: every environment of the run), in the rounds the schedule
    measured each in (``measured_in``: workload -> env -> rounds; absent: every round, as before
    later rounds measured only the undecided environments)."""
    envs = [e for e in run.get("environments", manifests) if manifests.get(e, {}).get("available", True)]
    wls = run.get("workloads", list(workloads))
    planned = run.get("environments_for", {})
    have = set()
    for r in summary.itertuples():
        for rnd in str(r.rounds).split(","):
            if rnd:
                have.add((r.env, r.workload, int(rnd)))
    rows = [{"scope": "cell", "env": e, "workload": w, "round": rnd, "reason": MISSING_CELL_REASON}
            for e in envs for w in wls for rnd in range(1, rounds_measured.get(w, 0) + 1)
            if e in planned.get(w, envs) and (e, w, rnd) not in have and rnd not in flagged.get(w, {})
            and (w not in (measured_in or {}) or rnd in measured_in[w].get(e, ()))]
    rows += [{"scope": "pair", "env": env, "workload": w, "round": rnd,
              "reason": f"not paired: its cell and the {baseline} cell of round {rnd} started {gap / 60:.0f} min "
                        f"apart (more than rounds.max_pair_gap_minutes)"}
             for w, lst in sorted((unpaired or {}).items()) for env, rnd, gap in sorted(lst)]
    gaps = sorted(set(summary["workload"]) - set(summary.loc[summary["env"] == baseline, "workload"]))
    if gaps:
        m = manifests.get(baseline)
        why = ("the baseline environment is unavailable: " + m.get("reason", "")
               if m is not None and not m.get("available", True)
               else "its baseline cells are missing (failed or not run)")
        rows += [{"scope": "baseline", "env": baseline, "workload": w, "round": 0, "reason": why} for w in gaps]
    return rows


def aa_significant(d: np.ndarray, horizon: int | None) -> np.ndarray:
    """Whether each column of per-round log ratios ``d`` (rounds x comparisons, NaN = no pair; any
    leading axes are resampling draws) has an interval that excludes 0: the sequential interval
    with ``horizon``, the fixed-n t-interval without (as :func:`isobench.stats.paired_ratio`)."""
    ok = np.isfinite(d)
    n = ok.sum(axis=-2)
    x = np.where(ok, d, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = x.sum(axis=-2) / n
        var = (np.where(ok, (x - mean[..., None, :]) ** 2, 0.0)).sum(axis=-2) / (n - 1)
        # one quantile per distinct n (the draws share few of them)
        uniq, inv = np.unique(n, return_inverse=True)
        cu = decision.multiplier(np.maximum(uniq, 0), horizon) if horizon is not None else \
            np.where(uniq >= decision.FIRST_LOOK, decision.fixed_multiplier(np.maximum(uniq, 2)), np.nan)
        c = np.asarray(cu)[inv].reshape(n.shape)
        half = c * np.sqrt(var) / np.sqrt(n)
        return (n >= decision.FIRST_LOOK) & (var > 0) & (np.abs(mean) > half)


def aa_check(calibration: pd.DataFrame, confidence: float, per_round: pd.DataFrame | None = None,
             horizons: dict[str, int] | None = None, *, seed: int = 0, draws: int = AA_DRAWS) -> list[dict[str, Any]]:
    """The A/A comparisons with an interval that came out significant, against what chance allows.

    A/A comparisons of one workload share their cells (fio's 17 metrics, stream's kernels, the
    sweep points), so their false alarms come together and a binomial limit fires far too often
    (7 % of clean runs at correlation 0.5, 13 % at 0.9). The null here keeps that correlation: the
    two environments of an A/A pair are exchangeable within a round, so flipping the sign of every
    log ratio of a round (the same flip for all comparisons of that workload's round) draws from the
    null distribution of the whole table. ``limit`` is the 95th percentile of the number of
    significant comparisons over ``draws`` flips (seeded), ``expected`` its mean; more than
    ``limit`` is not ``within_chance``. Without ``per_round`` (the per-round log ratios, columns
    workload, comparison, round, d) the binomial limit of independent comparisons is used."""
    lows = calibration["ratio_ci_low"].to_numpy(dtype=np.float64)
    judged = calibration[np.isfinite(lows)]
    k, n = int(judged["significant"].astype(bool).sum()), len(judged)
    if per_round is None or per_round.empty or n == 0:
        expected = (1 - confidence) * n
        limit = max(1.0, expected + 2 * math.sqrt(expected * confidence))
        method = "binomial: independent comparisons"
    else:
        rng = np.random.default_rng(seed)
        counts = np.zeros(draws)
        for wl, g in per_round.groupby("workload", sort=True):
            d = g.pivot(index="round", columns="comparison", values="d").to_numpy(np.float64)
            signs = rng.choice([-1.0, 1.0], size=(draws, d.shape[0], 1))
            signs[0] = 1.0   # the observed table is one of the draws (an exact randomisation test)
            counts += aa_significant(signs * d[None], (horizons or {}).get(wl)).sum(axis=-1)
        expected = float(counts.mean())
        limit = float(np.quantile(counts, confidence, method="higher"))
        method = (f"sign-flip null over rounds ({draws} draws, one flip per workload round for all its "
                  f"comparisons: correlated comparisons kept together)")
    return [{"comparisons": len(calibration), "judged": n, "significant": k, "confidence": confidence,
             "expected": expected, "limit": limit, "within_chance": k <= limit, "method": method}]
