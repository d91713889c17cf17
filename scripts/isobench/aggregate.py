"""Every cell's Parquet file -> one dataset, per-group statistics, overhead against the baseline.

``aggregate()`` writes into ``out_dir`` (each file atomically, complete or absent):

* ``cells.parquet``: every row of every cell (schema.SCHEMA) plus one column, ``outlier`` (Tukey's
  fences within its env x workload x metric x point group; always False for warm-up rows);
* ``summary.parquet`` / ``summary.csv``: one row per env x workload x metric x point over the
  measured iterations of all repetitions (warm-ups only counted, as ``n_warmup``), see
  :data:`SUMMARY_COLUMNS`;
* ``overhead.parquet`` / ``overhead.csv``: every other environment against the baseline, ratio of
  medians with a bootstrap CI, signed "% slower/faster", significance, comparability and the A/A
  noise floor, see :data:`OVERHEAD_COLUMNS`;
* ``calibration.parquet`` / ``calibration.csv``: A/A pairs, environments whose manifests have the
  same driver, settings and labels (e.g. ``native`` and ``native_again``). What they differ by is
  pure run-to-run noise, reported per workload x metric x point as the noise floor.

The statistics themselves are in :mod:`isobench.stats`. The parameters used (seed, resamples, rules)
are stored as JSON in the ``isobench_stats`` schema metadata of every Parquet output, so the report
can state them without being told.

Determinism: inputs are sorted by path and rows by their key columns, each group's bootstrap has its
own generator seeded from (seed, group key), and nothing depends on the order the files arrive in.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import stats
from .schema import SCHEMA
from .util import atomic_write_bytes, read_json

log = logging.getLogger("isobench")

GROUP = ["env", "workload", "metric", "point"]
ROW_ORDER = ["env", "workload", "rep", "iteration", "point", "metric"]
EMULATED_REASON = "emulated CPU (TCG): not a KVM figure"
#: manifest keys that name an environment rather than configure it (ignored when matching A/A pairs)
NAME_KEYS = ("env", "name")

SUMMARY_COLUMNS = {
    "env": "string", "driver": "string", "workload": "string", "kind": "string", "metric": "string",
    "point": "string", "unit": "string", "higher_is_better": "bool", "accel": "string", "emulated": "bool",
    "n": "int64", "n_warmup": "int64", "n_nonfinite": "int64", "n_reps": "int64", "reps": "string",
    "median": "float64", "mean": "float64", "stdev": "float64", "cv": "float64",
    "ci_low": "float64", "ci_high": "float64", "ci_note": "string", "n_outliers": "int64",
    "rep_median_cv": "float64", "tool_version": "string", "host_fingerprint": "string",
    "first_started_at": "datetime64[us, UTC]", "last_ended_at": "datetime64[us, UTC]",
}

OVERHEAD_COLUMNS = {
    "env": "string", "baseline": "string", "driver": "string", "workload": "string", "kind": "string",
    "metric": "string", "point": "string", "unit": "string", "higher_is_better": "bool",
    "accel": "string", "emulated": "bool", "n": "int64", "n_baseline": "int64",
    "median": "float64", "median_baseline": "float64",
    "ratio": "float64", "ratio_ci_low": "float64", "ratio_ci_high": "float64", "ci_note": "string",
    "overhead_pct": "float64", "overhead_ci_low": "float64", "overhead_ci_high": "float64",
    "significant": "bool", "effect": "string", "comparable": "bool", "reason": "string",
    "noise_floor_pct": "float64", "within_noise_floor": "bool",
}

CALIBRATION_COLUMNS = {
    "env_a": "string", "env_b": "string", "workload": "string", "metric": "string", "point": "string",
    "unit": "string", "higher_is_better": "bool", "n_a": "int64", "n_b": "int64",
    "median_a": "float64", "median_b": "float64", "ratio": "float64", "ratio_ci_low": "float64",
    "ratio_ci_high": "float64", "ci_note": "string", "diff_pct": "float64", "noise_floor_pct": "float64",
    "significant": "bool",
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
                "host_fingerprint", "accel", "image_key", "settings"):
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


def summarize(cells: pd.DataFrame, *, seed: int, n_boot: int) -> tuple[pd.DataFrame, pd.Series]:
    """Per-group statistics over measured iterations, and the outlier flag of every cell row."""
    outlier = pd.Series(False, index=cells.index)
    rows = []
    for key, g in cells.groupby(GROUP, sort=True):
        measured = g[~g["warmup"]]
        if measured.empty:
            continue
        values = measured["value"].to_numpy(dtype=np.float64)
        outlier.loc[measured.index] = stats.outlier_mask(values)
        st = stats.describe(values, stats.group_rng(seed, "summary", *key), n_boot)
        rep_medians = measured.groupby("rep")["value"].median().to_numpy(dtype=np.float64)
        rep_medians = rep_medians[np.isfinite(rep_medians)]
        rep_cv = (float(np.std(rep_medians, ddof=1) / np.mean(rep_medians))
                  if rep_medians.size > 1 and np.mean(rep_medians) != 0 else float("nan"))
        reps = sorted(measured["rep"].unique().tolist())
        rows.append({
            **dict(zip(GROUP, key)),
            "driver": _one(g["driver"], "driver", key), "kind": _one(g["kind"], "kind", key),
            "unit": _one(g["unit"], "unit", key),
            "higher_is_better": bool(_one(g["higher_is_better"], "direction", key)),
            "accel": _one(g["accel"], "accel", key), "emulated": bool(_one(g["emulated"], "emulated", key)),
            "n_warmup": int(g["warmup"].sum()), "n_reps": len(reps), "reps": ",".join(map(str, reps)),
            **st.as_dict(), "rep_median_cv": rep_cv,
            "tool_version": _joined(measured["tool_version"]),
            "host_fingerprint": _joined(measured["host_fingerprint"]),
            "first_started_at": measured["started_at"].min(), "last_ended_at": measured["ended_at"].max(),
        })
    return _frame(rows, SUMMARY_COLUMNS), outlier


def _measured(cells: pd.DataFrame) -> dict[tuple, np.ndarray]:
    m = cells[~cells["warmup"]]
    return {key: g["value"].to_numpy(dtype=np.float64) for key, g in m.groupby(GROUP, sort=True)}


def calibration(cells: pd.DataFrame, manifests: dict[str, dict[str, Any]], *, baseline: str, seed: int,
                n_boot: int) -> pd.DataFrame:
    """A/A comparisons: every group both environments of an identical pair measured."""
    values = _measured(cells)
    summary_meta = cells.drop_duplicates(GROUP).set_index(GROUP)
    rows = []
    for a, b in aa_pairs(manifests, baseline):
        for (env, wl, metric, point), vb in values.items():
            if env != b or (a, wl, metric, point) not in values:
                continue
            va = values[(a, wl, metric, point)]
            r = stats.ratio_of_medians(vb, va, stats.group_rng(seed, "aa", a, b, wl, metric, point), n_boot)
            meta = summary_meta.loc[(b, wl, metric, point)]
            diff = stats.overhead_pct(r.ratio, bool(meta["higher_is_better"]))
            rows.append({"env_a": a, "env_b": b, "workload": wl, "metric": metric, "point": point,
                         "unit": meta["unit"], "higher_is_better": bool(meta["higher_is_better"]),
                         "n_a": int(np.isfinite(va).sum()), "n_b": int(np.isfinite(vb).sum()),
                         "median_a": float(np.nanmedian(va)) if np.isfinite(va).any() else math.nan,
                         "median_b": float(np.nanmedian(vb)) if np.isfinite(vb).any() else math.nan,
                         "ratio": r.ratio, "ratio_ci_low": r.ci_low, "ratio_ci_high": r.ci_high,
                         "ci_note": r.note, "diff_pct": diff, "noise_floor_pct": abs(diff),
                         "significant": r.significant})
    return _frame(rows, CALIBRATION_COLUMNS)


def noise_floor(calib: pd.DataFrame) -> dict[tuple[str, str, str], float]:
    """Largest A/A difference per workload x metric x point (NaN differences ignored)."""
    out: dict[tuple[str, str, str], float] = {}
    for row in calib.itertuples(index=False):
        if math.isfinite(row.noise_floor_pct):
            k = (row.workload, row.metric, row.point)
            out[k] = max(out.get(k, 0.0), row.noise_floor_pct)
    return out


def overhead(cells: pd.DataFrame, summary: pd.DataFrame, *, baseline: str, seed: int, n_boot: int,
             floors: dict[tuple[str, str, str], float] | None = None) -> pd.DataFrame:
    """Every non-baseline group against the baseline's group of the same workload, metric and point.

    Groups whose workload the baseline did not measure get no row (the report says why).
    """
    values = _measured(cells)
    floors = floors or {}
    base = summary[summary["env"] == baseline].set_index(["workload", "metric", "point"])
    rows = []
    for s in summary[summary["env"] != baseline].itertuples(index=False):
        bkey = (s.workload, s.metric, s.point)
        if bkey not in base.index:
            continue
        b = base.loc[bkey]
        r = stats.ratio_of_medians(values[(s.env, *bkey)], values[(baseline, *bkey)],
                                   stats.group_rng(seed, "overhead", baseline, s.env, *bkey), n_boot)
        hib = bool(s.higher_is_better)
        pct = stats.overhead_pct(r.ratio, hib)
        lo, hi = stats.overhead_interval(r.ci_low, r.ci_high, hib)
        reasons = []
        if s.emulated:
            reasons.append(EMULATED_REASON)
        if s.host_fingerprint != b["host_fingerprint"]:
            reasons.append(f"measured on another host than {baseline} "
                           f"(fingerprint {s.host_fingerprint or '?'} vs {b['host_fingerprint'] or '?'})")
        effect = stats.effect_words(pct, baseline)
        if r.has_ci and not r.significant:
            effect += " (not significant: CI contains 1)"
        elif not r.has_ci and math.isfinite(r.ratio):
            effect += f" (no CI: {r.note})"
        if s.emulated:
            effect = f"emulated (TCG), not a KVM figure: {effect}"
        floor = floors.get(bkey, math.nan)
        rows.append({
            "env": s.env, "baseline": baseline, "driver": s.driver, "workload": s.workload, "kind": s.kind,
            "metric": s.metric, "point": s.point, "unit": s.unit, "higher_is_better": hib,
            "accel": s.accel, "emulated": bool(s.emulated), "n": s.n, "n_baseline": int(b["n"]),
            "median": s.median, "median_baseline": float(b["median"]),
            "ratio": r.ratio, "ratio_ci_low": r.ci_low, "ratio_ci_high": r.ci_high, "ci_note": r.note,
            "overhead_pct": pct, "overhead_ci_low": lo, "overhead_ci_high": hi,
            "significant": r.significant, "effect": effect, "comparable": not reasons,
            "reason": "; ".join(reasons), "noise_floor_pct": floor,
            "within_noise_floor": bool(math.isfinite(floor) and math.isfinite(pct) and abs(pct) <= floor),
        })
    return _frame(rows, OVERHEAD_COLUMNS)


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


def stats_metadata(*, baseline: str, seed: int, n_boot: int, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """The parameters and rules behind the numbers, stored with every output."""
    return {"baseline": baseline, "seed": seed, "n_boot": n_boot, "confidence": stats.CONFIDENCE,
            "ci_method": stats.CI_METHOD, "min_n_ci": stats.MIN_N_CI, "small_n": stats.SMALL_N,
            "outlier_rule": stats.OUTLIER_RULE, "aa_pairs": [list(p) for p in pairs],
            "pooling": "measured iterations of all repetitions pooled per group"}


def aggregate(cell_files: list[Path], env_manifests: list[Path], out_dir: Path, *, baseline: str = "native",
              seed: int = 20150329, n_boot: int = 2000) -> None:
    """Write cells, summary, overhead and calibration tables into out_dir (see the module doc)."""
    out_dir = Path(out_dir)
    cells = read_cells(cell_files)
    manifests = read_manifests(env_manifests)
    summary, outlier = summarize(cells, seed=seed, n_boot=n_boot)
    calib = calibration(cells, manifests, baseline=baseline, seed=seed, n_boot=n_boot)
    over = overhead(cells, summary, baseline=baseline, seed=seed, n_boot=n_boot, floors=noise_floor(calib))
    meta = stats_metadata(baseline=baseline, seed=seed, n_boot=n_boot, pairs=aa_pairs(manifests, baseline))
    if baseline not in set(summary["env"]):
        log.warning("aggregate: no results for the baseline %r: no overhead rows", baseline)

    full = pa.Table.from_pandas(cells.assign(outlier=outlier.to_numpy(dtype=bool)), preserve_index=False)
    with_outlier = pa.schema([*SCHEMA, pa.field("outlier", pa.bool_(), nullable=False)], metadata=SCHEMA.metadata)
    _write_parquet(full.cast(with_outlier), out_dir / "cells.parquet", meta)
    _write(summary, out_dir / "summary.parquet", out_dir / "summary.csv", meta)
    _write(over, out_dir / "overhead.parquet", out_dir / "overhead.csv", meta)
    _write(calib, out_dir / "calibration.parquet", out_dir / "calibration.csv", meta)
    log.info("aggregate: %d rows, %d groups, %d overhead rows, %d A/A rows", len(cells), len(summary),
             len(over), len(calib))


def read_metadata(parquet: Path) -> dict[str, Any]:
    """The ``isobench_stats`` metadata stored by :func:`aggregate` (empty when absent)."""
    meta = pq.read_schema(parquet).metadata or {}
    raw = meta.get(b"isobench_stats")
    return json.loads(raw) if raw else {}
