"""Every cell's Parquet file -> one dataset, per-group statistics, overhead against the baseline.

The round is the statistical unit (:mod:`isobench.rounds`): each cell reduces to one value per
metric and sweep point (the median of its measured iterations), and the rounds, not the
iterations, are what intervals are taken over. ``aggregate()`` writes these tables, each to the
path its :class:`Outputs` field names (the rule's named outputs; each file atomically, complete or
absent):

* ``cells.parquet``: every row of every cell (schema.SCHEMA) plus ``outlier`` (Tukey's fences
  within its env x workload x metric x point group; always False for warm-up rows) and ``flagged``
  (the sentinel flagged the row's round: it does not count);
* ``summary.parquet`` / ``summary.csv``: one row per env x workload x metric x point over the cells
  of the counted rounds: median and mean of the cell values, the 95 % t-interval of the mean over
  cells, the spread between cells, see :data:`SUMMARY_COLUMNS`;
* ``overhead.parquet`` / ``overhead.csv``: every other environment against the baseline, paired
  per round (:func:`isobench.stats.paired_ratio`): the geometric mean of the per-round ratios,
  its sequential interval (:mod:`isobench.decision`, valid at the stopping time; the method is
  ``ci_method`` in the metadata), half-width against the precision target, Benjamini-Hochberg
  adjusted significance, the A/A noise floor (the A/A interval's half-width at the row's n), the
  decision against the workload's margin (``margin_pct``, ``decision``, ``decision_text``,
  ``settle_rounds``), see :data:`OVERHEAD_COLUMNS`;
* ``calibration.parquet`` / ``calibration.csv``: A/A pairs, environments whose manifests have the
  same driver, settings and labels (``native`` and ``native_aa``), analysed the same paired way;
  what they differ by is pure noise. ``noise_floor_pct`` is the A/A interval's half-width,
  ``p95_diff_pct`` the 95th percentile of the A/A pair's absolute per-round differences;
* ``precision.parquet`` / ``precision.csv``: per workload the target, the rounds measured, usable
  and flagged (with the reasons), the worst half-width reached, whether its rounds ended because
  every primary comparison was decided or as precise as the target (``met``; ``stop`` says which:
  "decided", "target met") or a cap stopped them, and the rounds the ideal (1.96 SD / h)^2
  implies for the observed paired SD;
* ``paper`` / ``paper_csv``: every overhead row against Felter et al.'s ratio with its verdict
  (:func:`isobench.compare.paper_table`; the paper's figures, ``report/paper_results.yaml``, are an
  input of this stage); the band tolerance is stored as ``paper_tolerance`` in its metadata;
* ``missing`` / ``missing_csv``: missing cells and workloads without baseline results
  (:func:`isobench.compare.missing_table`);
* ``aa_check`` / ``aa_check_csv``: the A/A comparisons that came out significant against what
  chance allows under a sign-flip null over rounds that keeps correlated comparisons together
  (:func:`isobench.compare.aa_check`);
* ``environments`` / ``environments_csv``: each environment's status, emulation and paper
  counterparts (:func:`isobench.compare.environments_table`);
* ``cpu_cost`` / ``cpu_cost_csv``: the CPU cost of the work per environment and workload (host CPUs
  busy, the environment's own CPU time, CPU seconds per Gbit for network bandwidth) with intervals
  and the cost against the baseline paired per round (:mod:`isobench.cost`).

The parameters used (seed, rules) are stored as JSON in the ``isobench_stats`` schema metadata of
every Parquet output, so the report can state them without being told.

Determinism: inputs are sorted by path and rows by their key columns; nothing depends on the order
the files arrive in.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import compare, cost, decision, rounds, stats
from . import paper as paperlib
from .schema import SCHEMA
from .util import atomic_write_bytes, read_json

log = logging.getLogger("isobench")

GROUP = ["env", "workload", "metric", "point"]
ROW_ORDER = ["env", "workload", "round", "iteration", "point", "metric"]
EMULATED_REASON = paperlib.EMULATED_REASON   # one wording for the tables and the paper comparison
#: manifest keys that name an environment rather than configure it (ignored when matching A/A pairs)
NAME_KEYS = ("env", "name")

SUMMARY_COLUMNS = {
    "env": "string", "driver": "string", "workload": "string", "kind": "string", "metric": "string",
    "point": "string", "unit": "string", "higher_is_better": "bool", "accel": "string", "emulated": "bool",
    "n_rounds": "int64", "rounds": "string", "n": "int64", "n_warmup": "int64", "n_nonfinite": "int64",
    "median": "float64", "mean": "float64", "stdev": "float64", "cv": "float64",
    "ci_low": "float64", "ci_high": "float64", "ci_note": "string", "n_outliers": "int64",
    "tool_version": "string", "host_fingerprint": "string",
    "first_started_at": "datetime64[us, UTC]", "last_ended_at": "datetime64[us, UTC]",
}

OVERHEAD_COLUMNS = {
    "env": "string", "baseline": "string", "driver": "string", "workload": "string", "kind": "string",
    "metric": "string", "point": "string", "unit": "string", "higher_is_better": "bool", "primary": "bool",
    "accel": "string", "emulated": "bool", "aa": "bool", "n": "int64",
    "median": "float64", "median_baseline": "float64",
    "ratio": "float64", "ratio_ci_low": "float64", "ratio_ci_high": "float64", "ci_note": "string",
    "sd_log": "float64", "halfwidth_pct": "float64", "target_pct": "float64", "target_met": "bool",
    "p_value": "float64", "q_value": "float64",
    "overhead_pct": "float64", "overhead_ci_low": "float64", "overhead_ci_high": "float64",
    "significant": "bool", "effect": "string", "comparable": "bool", "reason": "string",
    "noise_floor_pct": "float64", "within_noise_floor": "bool",
    "margin_pct": "float64", "decision": "string", "decision_text": "string", "settle_rounds": "float64",
}

CALIBRATION_COLUMNS = {
    "env_a": "string", "env_b": "string", "workload": "string", "metric": "string", "point": "string",
    "unit": "string", "higher_is_better": "bool", "n": "int64",
    "median_a": "float64", "median_b": "float64", "ratio": "float64", "ratio_ci_low": "float64",
    "ratio_ci_high": "float64", "ci_note": "string", "sd_log": "float64", "halfwidth_pct": "float64",
    "diff_pct": "float64", "p95_diff_pct": "float64", "noise_floor_pct": "float64", "significant": "bool",
}

PRECISION_COLUMNS = {
    "workload": "string", "target_pct": "float64", "rounds": "int64", "usable": "int64", "flagged": "int64",
    "flagged_why": "string", "halfwidth_pct": "float64", "worst_env": "string", "worst_metric": "string",
    "worst_point": "string", "sd_log": "float64", "ideal_rounds": "int64", "met": "bool", "stop": "string",
    "capped": "bool", "seconds": "float64",
}


# -- reading ---------------------------------------------------------------------------------------
def read_cells(cell_files: Iterable[Path]) -> pd.DataFrame:
    """All cell rows, schema-checked, sorted by their key (not by file order)."""
    tables = []
    for path in sorted(map(Path, cell_files), key=str):
        table = pq.read_table(path)
        missing = [n for n in SCHEMA.names if n not in table.column_names]
        if missing:
            version = SCHEMA.metadata[b"isobench_schema_version"].decode()
            raise ValueError(f"{path}: not a cell file of schema version {version} "
                             f"(missing columns: {', '.join(missing)})")
        tables.append(table.select(SCHEMA.names).cast(SCHEMA))
    table = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
    df = table.to_pandas()
    for col in ("env", "driver", "workload", "kind", "point", "metric", "unit", "tool_version",
                "host_fingerprint", "accel", "image_key", "settings", "point_subject"):
        df[col] = df[col].astype(object)
    return df.sort_values(ROW_ORDER + ["warmup"], kind="mergesort").reset_index(drop=True)


def read_manifests(paths: Iterable[Path]) -> dict[str, dict[str, Any]]:
    """Environment manifests by env name."""
    out = {}
    for p in sorted(map(Path, paths), key=str):
        m = read_json(p)
        out[m["env"]] = m
    return dict(sorted(out.items()))


def identity(manifest: dict[str, Any]) -> str:
    """What makes two environments the same: driver, settings (names removed) and labels."""
    settings = {k: v for k, v in (manifest.get("settings") or {}).items() if k not in NAME_KEYS}
    return json.dumps({"driver": manifest.get("driver"), "settings": settings,
                       "labels": manifest.get("labels") or {}}, sort_keys=True)


def aa_pairs(manifests: dict[str, dict[str, Any]], baseline: str = "native") -> list[tuple[str, str]]:
    """A/A pairs among the available environments: (reference, other), the baseline first if in it."""
    by_id: dict[str, list[str]] = {}
    for env, m in manifests.items():
        if m.get("available", True):
            by_id.setdefault(identity(m), []).append(env)
    pairs = []
    for envs in by_id.values():
        envs = sorted(envs, key=lambda e: (e != baseline, e))
        pairs += list(itertools.combinations(envs, 2))
    return sorted(pairs)


# -- statistics ------------------------------------------------------------------------------------
def _one(values: pd.Series, what: str, key: tuple) -> Any:
    uniq = pd.unique(values)
    if len(uniq) != 1:
        raise ValueError(f"group {'/'.join(map(str, key))}: {what} is not unique ({', '.join(map(str, uniq))}); "
                         f"cells of one workload must agree on it")
    return uniq[0]


def _joined(values: pd.Series) -> str:
    return "; ".join(sorted({str(v) for v in values if str(v)}))


def flag_rows(cells: pd.DataFrame, flagged: dict[str, dict[int, str]]) -> pd.Series:
    """True for the rows of rounds the sentinel flagged (``flagged``: workload -> round -> why)."""
    keys = {(w, r) for w, rs in flagged.items() for r in rs}
    if not keys or cells.empty:
        return pd.Series(False, index=cells.index)
    return pd.Series([(w, r) in keys for w, r in zip(cells["workload"], cells["round"])], index=cells.index)


def summarize(cells: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Per-group statistics over the cells of the counted rounds, and every row's outlier flag."""
    outlier = pd.Series(False, index=cells.index)
    values = rounds.cell_values(cells)
    by_group = {k: g for k, g in values.groupby(GROUP, sort=True)} if not values.empty else {}
    rows = []
    for key, g in cells.groupby(GROUP, sort=True):
        measured = g[~g["warmup"]]
        if measured.empty:
            continue
        it = measured["value"].to_numpy(dtype=np.float64)
        outlier.loc[measured.index] = stats.outlier_mask(it)
        cv = by_group[key]["value"].to_numpy(dtype=np.float64)
        fin = stats.finite(cv)
        mean, lo, hi, note = stats.mean_interval(fin)
        stdev = float(np.std(fin, ddof=1)) if fin.size > 1 else math.nan
        rnds = sorted(int(r) for r in by_group[key]["round"])
        rows.append({
            **dict(zip(GROUP, key)),
            "driver": _one(g["driver"], "driver", key), "kind": _one(g["kind"], "kind", key),
            "unit": _one(g["unit"], "unit", key),
            "higher_is_better": bool(_one(g["higher_is_better"], "direction", key)),
            "accel": _one(g["accel"], "accel", key), "emulated": bool(_one(g["emulated"], "emulated", key)),
            "n_rounds": len(rnds), "rounds": ",".join(map(str, rnds)), "n": int(np.isfinite(it).sum()),
            "n_warmup": int(g["warmup"].sum()), "n_nonfinite": int((~np.isfinite(it)).sum()),
            "median": float(np.median(fin)) if fin.size else math.nan, "mean": mean, "stdev": stdev,
            "cv": stdev / mean if fin.size > 1 and mean else math.nan,
            "ci_low": lo, "ci_high": hi, "ci_note": note, "n_outliers": int(stats.outlier_mask(it).sum()),
            "tool_version": _joined(measured["tool_version"]),
            "host_fingerprint": _joined(measured["host_fingerprint"]),
            "first_started_at": measured["started_at"].min(), "last_ended_at": measured["ended_at"].max(),
        })
    return _frame(rows, SUMMARY_COLUMNS), outlier


def _pct(log_value: float) -> float:
    return (math.exp(log_value) - 1) * 100 if math.isfinite(log_value) else math.nan


def calibration(values: pd.DataFrame, manifests: dict[str, dict[str, Any]], *, baseline: str,
                gaps: dict[str, float] | None = None, horizons: dict[str, int] | None = None) -> pd.DataFrame:
    """A/A comparisons, paired per round: every group both environments of an identical pair measured.
    ``noise_floor_pct`` is the half-width of the A/A interval (the interval an effect of exactly
    nothing gets at this n), ``p95_diff_pct`` the 95th percentile of single-round |A/A| differences."""
    gaps, horizons = gaps or {}, horizons or {}
    rows = []
    meta = values.drop_duplicates(["env", "workload", "metric", "point"]).set_index(["env", "workload", "metric",
                                                                                       "point"])
    for a, b in aa_pairs(manifests, baseline):
        keys = values[values["env"] == b][["workload", "metric", "point"]].drop_duplicates()
        for wl, metric, point in sorted(keys.itertuples(index=False)):
            if (a, wl, metric, point) not in meta.index:
                continue
            sub = values[values["workload"] == wl]
            x, y, _ = rounds.paired(sub, b, a, metric, point, max_gap_s=gaps.get(wl, math.inf))
            ps = stats.paired_ratio(x, y, horizon=horizons.get(wl))
            d = stats.log_ratios(x, y)
            m = meta.loc[(b, wl, metric, point)]
            hib = bool(m["higher_is_better"])
            p95 = _pct(float(np.percentile(np.abs(d), 95))) if d.size else math.nan
            rows.append({"env_a": a, "env_b": b, "workload": wl, "metric": metric, "point": point,
                         "unit": m["unit"], "higher_is_better": hib, "n": ps.n,
                         "median_a": float(np.median(y)) if y.size else math.nan,
                         "median_b": float(np.median(x)) if x.size else math.nan,
                         "ratio": ps.ratio, "ratio_ci_low": ps.ci_low, "ratio_ci_high": ps.ci_high,
                         "ci_note": ps.note, "sd_log": ps.sd_log, "halfwidth_pct": ps.halfwidth_pct,
                         "diff_pct": stats.overhead_pct(ps.ratio, hib), "p95_diff_pct": p95,
                         "noise_floor_pct": ps.halfwidth_pct if ps.has_ci else math.nan,
                         "significant": ps.excludes_one})
    return _frame(rows, CALIBRATION_COLUMNS)


def aa_rounds(values: pd.DataFrame, manifests: dict[str, dict[str, Any]], *, baseline: str,
              gaps: dict[str, float] | None = None) -> pd.DataFrame:
    """The per-round A/A log ratios (columns workload, comparison, round, d): what the A/A chance
    check resamples (:func:`isobench.compare.aa_check`)."""
    gaps = gaps or {}
    rows = []
    for a, b in aa_pairs(manifests, baseline):
        keys = values[values["env"] == b][["workload", "metric", "point"]].drop_duplicates()
        for wl, metric, point in sorted(keys.itertuples(index=False)):
            sub = values[values["workload"] == wl]
            x, y, common = rounds.paired(sub, b, a, metric, point, max_gap_s=gaps.get(wl, math.inf))
            with np.errstate(divide="ignore", invalid="ignore"):
                d = np.log(x / y)
            rows += [{"workload": wl, "comparison": f"{a}/{b}/{metric}/{point}", "round": r, "d": float(v)}
                     for r, v in zip(common, d) if math.isfinite(v)]
    return pd.DataFrame(rows, columns=["workload", "comparison", "round", "d"])


def noise_floor(calib: pd.DataFrame) -> dict[tuple[str, str, str], float]:
    """Per workload x metric x point: the largest per-round SD of the A/A log ratios over the A/A
    pairs (NaN ignored). The overhead table turns it into the half-width an A/A comparison gets at
    the row's own n, the noise floor on the scale of the interval it is compared with."""
    out: dict[tuple[str, str, str], float] = {}
    for row in calib.itertuples(index=False):
        if math.isfinite(row.sd_log) and row.sd_log > 0:
            k = (row.workload, row.metric, row.point)
            out[k] = max(out.get(k, 0.0), row.sd_log)
    return out


def _floor_pct(sd_aa: float, n: int, horizon: int | None) -> float:
    """The A/A interval's half-width (%) at n rounds for the A/A pair SD ``sd_aa``."""
    if not (math.isfinite(sd_aa) and n >= decision.FIRST_LOOK):
        return math.nan
    c = decision.multiplier(n, horizon) if horizon is not None else float(decision.fixed_multiplier(n))
    return (math.exp(c * sd_aa / math.sqrt(n)) - 1) * 100


def overhead(values: pd.DataFrame, summary: pd.DataFrame, *, baseline: str, targets: dict[str, float],
             primary: dict[str, set[str]], aa_envs: set[str],
             floors: dict[tuple[str, str, str], float] | None = None,
             gaps: dict[str, float] | None = None, horizons: dict[str, int] | None = None,
             margins: dict[str, float] | None = None) -> pd.DataFrame:
    """Every non-baseline group against the baseline's group of the same workload, metric and point,
    paired per round: the geometric mean of the per-round ratios with its interval, the sequential
    one when the workload's rounds stopped on the data (``horizons``: workload -> rounds.max; absent:
    the fixed-n t-interval), and the decision against the workload's margin (``margins``, from its
    round record; absent: rounds.DEFAULT_MARGIN_PCT). Groups whose workload the baseline did not measure get no row (the
    report says why). Significance: Benjamini-Hochberg over the comparable, non-A/A rows (fixed-n
    p-values; the decision words are the sequentially valid statement). ``floors``: the A/A pair SD
    per workload x metric x point (:func:`noise_floor`)."""
    floors, gaps, horizons, margins = floors or {}, gaps or {}, horizons or {}, margins or {}
    base = summary[summary["env"] == baseline].set_index(["workload", "metric", "point"])
    rows = []
    for s in summary[summary["env"] != baseline].itertuples(index=False):
        bkey = (s.workload, s.metric, s.point)
        if bkey not in base.index:
            continue
        b = base.loc[bkey]
        x, y, _ = rounds.paired(values[values["workload"] == s.workload], s.env, baseline, s.metric, s.point,
                                max_gap_s=gaps.get(s.workload, math.inf))
        horizon = horizons.get(s.workload)
        ps = stats.paired_ratio(x, y, horizon=horizon)
        hib = bool(s.higher_is_better)
        pct = stats.overhead_pct(ps.ratio, hib)
        margin = margins.get(s.workload, rounds.DEFAULT_MARGIN_PCT)
        word = str(decision.decide_arrays(math.log(ps.ci_low) if ps.has_ci else math.nan,
                                          math.log(ps.ci_high) if ps.has_ci else math.nan, margin, hib))
        settle = math.nan
        if word not in decision.DECIDED and ps.n >= 2 and ps.ratio > 0:
            settle = float(decision.settle_rounds(math.log(ps.ratio), ps.sd_log, ps.n, margin,
                                                  horizon or decision.DEFAULT_HORIZON))
            if ps.n < decision.FIRST_LOOK:
                settle = max(settle if math.isfinite(settle) else 0.0, float(decision.FIRST_LOOK - ps.n))
        lo, hi = stats.overhead_interval(ps.ci_low, ps.ci_high, hib)
        reasons = []
        if s.emulated:
            reasons.append(EMULATED_REASON)
        if s.host_fingerprint != b["host_fingerprint"]:
            reasons.append(f"measured on another host than {baseline} "
                           f"(fingerprint {s.host_fingerprint or '?'} vs {b['host_fingerprint'] or '?'})")
        target = targets.get(s.workload, math.nan)
        rows.append({
            "env": s.env, "baseline": baseline, "driver": s.driver, "workload": s.workload, "kind": s.kind,
            "metric": s.metric, "point": s.point, "unit": s.unit, "higher_is_better": hib,
            "primary": s.metric in primary.get(s.workload, set()), "accel": s.accel,
            "emulated": bool(s.emulated), "aa": s.env in aa_envs, "n": ps.n,
            "median": float(np.median(x)) if x.size else math.nan,
            "median_baseline": float(np.median(y)) if y.size else math.nan,
            "ratio": ps.ratio, "ratio_ci_low": ps.ci_low, "ratio_ci_high": ps.ci_high, "ci_note": ps.note,
            "sd_log": ps.sd_log, "halfwidth_pct": ps.halfwidth_pct, "target_pct": target,
            "target_met": bool(ps.has_ci and ps.halfwidth_pct <= target),
            "p_value": ps.p_value if ps.has_ci else math.nan,
            "overhead_pct": pct, "overhead_ci_low": lo, "overhead_ci_high": hi,
            "comparable": not reasons, "reason": "; ".join(reasons),
            "noise_floor_pct": _floor_pct(floors.get(bkey, math.nan), ps.n, horizon),
            "margin_pct": margin, "decision": word, "settle_rounds": settle,
            "decision_text": ("emulated (TCG), not a KVM figure: " if s.emulated else "")
            + decision.text(word, ps.ratio, ps.ci_low, ps.ci_high, margin, hib, settle, baseline, ps.n),
        })
    df = pd.DataFrame(rows)
    if df.empty:
        return _frame([], OVERHEAD_COLUMNS)
    family = df["comparable"] & ~df["aa"]
    q = np.full(len(df), np.nan)
    q[family.to_numpy()] = stats.bh_adjust(df.loc[family, "p_value"].to_numpy(np.float64))
    df["q_value"] = q
    alpha = 1 - stats.CONFIDENCE
    # A/A rows are judged by their own interval (they are the test of the method, not a finding); the
    # others need both: the FDR-adjusted fixed-n p-value and the sequential interval excluding 1 (so
    # "significant" never says more than the interval valid at the stopping time)
    excludes = [bool(math.isfinite(lo_) and (lo_ > 1 or hi_ < 1))
                for lo_, hi_ in zip(df["ratio_ci_low"], df["ratio_ci_high"])]
    df["significant"] = [ex if aa else bool(np.isfinite(qv) and qv < alpha and ex)
                         for qv, aa, ex in zip(df["q_value"], df["aa"], excludes)]
    # never over an effect the interval shows (significant, or decided slower/faster)
    df["within_noise_floor"] = [bool(math.isfinite(f) and math.isfinite(p) and abs(p) <= f and not sig
                                     and w not in (decision.SLOWER, decision.FASTER))
                                for f, p, sig, w in zip(df["noise_floor_pct"], df["overhead_pct"], df["significant"],
                                                        df["decision"])]
    df["effect"] = [_effect(r, baseline) for r in df.itertuples(index=False)]
    return _frame(df.to_dict("records"), OVERHEAD_COLUMNS)


def _effect(r, baseline: str) -> str:
    words = stats.effect_words(r.overhead_pct, baseline)
    if not math.isfinite(r.ratio_ci_low):
        if math.isfinite(r.ratio):
            words += f" (no interval: {r.ci_note})"
    elif r.within_noise_floor:
        words += f" (within the A/A noise floor of ±{r.noise_floor_pct:.1f}% at {r.n} rounds)"
    elif r.aa and not r.significant:
        words += " (not significant: CI contains 1)"
    elif r.comparable and not r.significant:
        words += " (not significant after FDR control)"
    if r.emulated:
        words = f"emulated (TCG), not a KVM figure: {words}"
    return words


def precision_table(batches: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per workload from its final round decision (isobench.rounds.decide)."""
    rows = []
    for rec in sorted(batches, key=lambda r: r["workload"]):
        worst = rec.get("worst") or {}
        sd = worst.get("sd_log", math.nan)
        sd = math.nan if sd is None else float(sd)
        stop = rec.get("stop", "")
        rows.append({"workload": rec["workload"], "target_pct": rec["target_pct"], "rounds": rec["rounds"],
                     "usable": rec["usable"], "flagged": len(rec.get("flagged", {})),
                     "flagged_why": "; ".join(f"round {r}: {w}" for r, w in rec.get("flagged", {}).items()),
                     "halfwidth_pct": worst.get("halfwidth_pct", math.nan), "worst_env": worst.get("env", ""),
                     "worst_metric": worst.get("metric", ""), "worst_point": worst.get("point", ""),
                     "sd_log": sd, "ideal_rounds": stats.rounds_for(sd, rec["target_pct"], t_based=False)
                     if math.isfinite(sd) else 0,
                     "met": stop in ("decided", "target met"), "stop": stop,
                     "capped": stop in ("max rounds", "time budget"),
                     "seconds": rec.get("seconds", math.nan)})
    return _frame(rows, PRECISION_COLUMNS)


# -- writing ---------------------------------------------------------------------------------------
def _frame(rows: list[dict[str, Any]], columns: dict[str, str]) -> pd.DataFrame:
    """A frame with exactly these columns and dtypes, also when there are no rows."""
    df = pd.DataFrame(rows, columns=list(columns))
    for col, dtype in columns.items():
        if dtype == "string":
            df[col] = df[col].astype(object).where(df[col].notna(), "").astype(str)
        elif dtype.startswith("datetime"):
            df[col] = pd.to_datetime(df[col], utc=True).astype(dtype)
        else:
            df[col] = df[col].astype(dtype)
    return df


def _write_parquet(table: pa.Table, path: Path, meta: dict[str, Any]) -> None:
    """Atomically, with the statistics parameters in the schema metadata."""
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           b"isobench_stats": json.dumps(meta, sort_keys=True).encode()})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    atomic_write_bytes(path, sink.getvalue())


def _write(df: pd.DataFrame, parquet: Path, csv: Path, meta: dict[str, Any]) -> None:
    _write_parquet(pa.Table.from_pandas(df, preserve_index=False), parquet, meta)
    atomic_write_bytes(csv, df.to_csv(index=False, lineterminator="\n").encode())


def stats_metadata(*, baseline: str, seed: int, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """The parameters and rules behind the numbers, stored with every output."""
    return {"baseline": baseline, "seed": seed, "confidence": stats.CONFIDENCE,
            "estimator": "geometric mean of the per-round ratios env / baseline (cell value: median of its "
                         "measured iterations)",
            "ci_method": f"{decision.METHOD} (workloads without a round record: {stats.PAIRED_METHOD})",
            "decision_rule": decision.RULE,
            "absolute_ci_method": "t-interval of the mean of the cell values",
            "fdr": stats.FDR_METHOD, "min_rounds_ci": stats.MIN_ROUNDS_CI, "min_n_ci": stats.MIN_N_CI,
            "outlier_rule": stats.OUTLIER_RULE, "aa_pairs": [list(p) for p in pairs],
            "unit": "round: one value per cell (median of its measured iterations), paired by round",
            "noise_floor": "half-width of the A/A interval at the row's own number of rounds (the A/A pair's "
                           "per-round SD, the largest over the A/A pairs); never shown over a significant or "
                           "decided slower/faster row"}


@dataclass(frozen=True)
class Outputs:
    """Where each table goes: one field per named output of the rule (rules/aggregate.smk)."""
    cells: Path
    summary: Path
    summary_csv: Path
    overhead: Path
    overhead_csv: Path
    calibration: Path
    calibration_csv: Path
    precision: Path
    precision_csv: Path
    paper: Path
    paper_csv: Path
    missing: Path
    missing_csv: Path
    aa_check: Path
    aa_check_csv: Path
    environments: Path
    environments_csv: Path
    cpu_cost: Path
    cpu_cost_csv: Path

    @classmethod
    def of(cls, named: dict[str, Any]) -> Outputs:
        """From the rule's named outputs; a name too many or too few is an error."""
        want = {f.name for f in fields(cls)}
        if set(named) != want:
            raise ValueError(f"aggregate outputs: expected {sorted(want)}, got {sorted(named)}")
        return cls(**{k: Path(v) for k, v in named.items()})


def aggregate(cell_files: list[Path], env_manifests: list[Path], out: Outputs, *,
              batches: list[Path] = (), workloads_json: Path | None = None,
              paper_results: Path | str = paperlib.DEFAULT_PATH, baseline: str = "native",
              seed: int = 20150329) -> None:
    """Write every table of the module doc to its path in ``out``. ``workloads_json`` (the workload
    descriptions with the run record under ``_run``) matches workloads to the paper's and lists the
    planned cells; without it no workload has a paper counterpart and no cell is listed missing."""
    cells = read_cells(cell_files)
    manifests = read_manifests(env_manifests)
    records = [read_json(p) for p in sorted(map(Path, batches), key=str)]
    flagged = {r["workload"]: {int(k): v for k, v in r.get("flagged", {}).items()} for r in records}
    flags = flag_rows(cells, flagged)
    counted = cells[~flags.to_numpy(dtype=bool)] if len(cells) else cells
    summary, outlier = summarize(counted)
    values = rounds.cell_values(counted)
    pairs = aa_pairs(manifests, baseline)
    gaps = {r["workload"]: float(r.get("policy", {}).get("max_pair_gap_s", math.inf)) for r in records}
    horizons = {r["workload"]: int(max(r.get("policy", {}).get("max_rounds", r["rounds"]), r["rounds"]))
                for r in records}
    margins = {r["workload"]: float(r["margin_pct"]) for r in records if "margin_pct" in r}
    calib = calibration(values, manifests, baseline=baseline, gaps=gaps, horizons=horizons)
    over = overhead(values, summary, baseline=baseline,
                    targets={r["workload"]: float(r["target_pct"]) for r in records},
                    primary={r["workload"]: set(r.get("primary", [])) for r in records},
                    aa_envs={b for a, b in pairs if a == baseline}, floors=noise_floor(calib), gaps=gaps,
                    horizons=horizons, margins=margins)
    prec = precision_table(records)
    meta = stats_metadata(baseline=baseline, seed=seed, pairs=pairs)
    if baseline not in set(summary["env"]):
        log.warning("aggregate: no results for the baseline %r: no overhead rows", baseline)

    full = pa.Table.from_pandas(cells.assign(outlier=outlier.reindex(cells.index, fill_value=False)
                                             .to_numpy(dtype=bool), flagged=flags.to_numpy(dtype=bool)),
                                preserve_index=False)
    # from_pandas reads a float NaN (a reading the cell does not have, e.g. native's env_cpu_s) as
    # null; the schema keeps it NaN, as the cells do
    full = pa.table({name: pc.fill_null(col, float("nan")) if pa.types.is_floating(col.type) else col
                     for name, col in zip(full.column_names, full.columns)})
    extra = [pa.field("outlier", pa.bool_(), nullable=False), pa.field("flagged", pa.bool_(), nullable=False)]
    _write_parquet(full.cast(pa.schema([*SCHEMA, *extra], metadata=SCHEMA.metadata)), out.cells, meta)
    _write(summary, out.summary, out.summary_csv, meta)
    _write(over, out.overhead, out.overhead_csv, meta)
    _write(calib, out.calibration, out.calibration_csv, meta)
    _write(prec, out.precision, out.precision_csv, meta)

    described = dict(read_json(workloads_json)) if workloads_json is not None else {}
    run = described.pop("_run", None) or {}
    paper = paperlib.load(paper_results)
    comparison = compare.paper_table(over, manifests, described, paper)
    missing = _frame(compare.missing_table(summary, manifests, run, described,
                                           {r["workload"]: int(r["rounds"]) for r in records}, flagged, baseline,
                                           {w: rounds.unpaired_rounds(values[values["workload"] == w], baseline, g)
                                            for w, g in gaps.items()},
                                           {r["workload"]: r["planned"] for r in records if "planned" in r}),
                     compare.MISSING_COLUMNS)
    aa = _frame(compare.aa_check(calib, stats.CONFIDENCE, aa_rounds(values, manifests, baseline=baseline, gaps=gaps),
                                 horizons, seed=seed), compare.AA_CHECK_COLUMNS)
    envs = _frame(compare.environments_table(summary, manifests, paper), compare.ENVIRONMENT_COLUMNS)
    _write(comparison, out.paper, out.paper_csv, {**meta, "paper_tolerance": paper.tolerance})
    _write(missing, out.missing, out.missing_csv, meta)
    _write(aa, out.aa_check, out.aa_check_csv, meta)
    _write(envs, out.environments, out.environments_csv, meta)
    params = {w: d.get("params", {}) for w, d in described.items()}
    cpu = _frame(cost.cost_table(counted, params, baseline=baseline, gaps=gaps, horizons=horizons),
                 cost.COST_COLUMNS)
    _write(cpu, out.cpu_cost, out.cpu_cost_csv, {**meta, "cost_basis": cost.BASIS})
    log.info("aggregate: %d rows, %d groups, %d overhead rows, %d A/A rows, %d workloads, %d missing", len(cells),
             len(summary), len(over), len(calib), len(prec), len(missing))


def read_metadata(parquet: Path) -> dict[str, Any]:
    """The ``isobench_stats`` metadata stored by :func:`aggregate` (empty when absent)."""
    meta = pq.read_schema(parquet).metadata or {}
    raw = meta.get(b"isobench_stats")
    return json.loads(raw) if raw else {}
