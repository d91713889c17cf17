"""Where the variance lives, from a finished run: prints figures, changes nothing.

    python scripts/noise_study.py [RESULTS_DIR]      (default: results)

Reads ``aggregate/cells.parquet`` (every iteration of every cell) and ``aggregate/precision.csv``
and prints, per workload and primary metric:

* the within-cell spread: the SD of log(iteration / cell median) over the measured iterations;
* the pair SD: the SD over rounds of log(E_r / native_r) for every environment against native,
  with the cell value taken as the first measured iteration only, the median of the first two, and
  the median of all (so what more iterations per cell buy, measured on the same cells);
* the between-cell SD implied: pair variance minus what the iterations contribute;
* Kalibera & Jones' optimal iterations per cell, sqrt((cost of a cell / cost of an iteration) x
  (within-cell variance / between-cell variance)), from the cells' measured times;
* the rounds used, the half-width reached and the rounds (1.96 SD / h)^2 implies for the observed
  pair SD (from the precision table), and the wall time measured.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from isobench import stats


def cell_value(g: pd.DataFrame, k: int | None) -> float:
    v = g.sort_values("iteration")["value"].to_numpy(np.float64)
    return float(np.median(v if k is None else v[:k]))


def study(results: Path) -> None:
    cells = pd.read_parquet(results / "aggregate" / "cells.parquet")
    prec = pd.read_csv(results / "aggregate" / "precision.csv").set_index("workload")
    cells = cells[~cells["warmup"] & ~cells["flagged"]]
    over = pd.read_parquet(results / "aggregate" / "overhead.parquet")
    primary = set(zip(over.loc[over["primary"], "workload"], over.loc[over["primary"], "metric"]))
    print(f"{'workload':<13} {'metric':<10} {'env':<10} {'n':>3} {'iter SD':>8} "
          f"{'pair SD 1 it':>12} {'2 it':>7} {'all it':>7} {'cell SD':>8} {'KJ opt it':>9}")
    for (wl, metric, point), g in cells.groupby(["workload", "metric", "point"], sort=True):
        if (wl, metric) not in primary:
            continue
        n_it = int(g.groupby(["env", "round"]).size().max())
        within = g.groupby(["env", "round"])["value"].transform("median")
        it_sd = float(np.std(np.log(g["value"] / within), ddof=1)) if len(g) > 2 else math.nan
        per = {k: g.groupby(["env", "round"]).apply(cell_value, k, include_groups=False) for k in (1, 2, None)}
        # cost: a cell's wall time against one iteration's measured time
        cell_s = g.drop_duplicates(["env", "round"])["cell_seconds"].median()
        iter_s = (g["ended_at"] - g["started_at"]).dt.total_seconds().median()
        for env in sorted(set(g["env"]) - {"native"}):
            sds = []
            for k in (1, 2, None):
                s = per[k]
                e, b = s.xs(env, level="env"), s.xs("native", level="env")
                common = sorted(set(e.index) & set(b.index))
                d = stats.log_ratios(e.loc[common].to_numpy(), b.loc[common].to_numpy())
                sds.append(float(np.std(d, ddof=1)) if d.size > 2 else math.nan)
            n = len(common)
            # pair variance = 2 x (between-cell variance + within variance / iterations)
            between = max(sds[2] ** 2 / 2 - it_sd ** 2 / max(n_it, 1), 1e-12) if math.isfinite(sds[2]) else math.nan
            fixed = max(cell_s - n_it * iter_s, iter_s) if math.isfinite(cell_s) else math.nan
            opt = math.sqrt(fixed / iter_s * it_sd ** 2 / between) if math.isfinite(between) else math.nan
            label = metric + (f"@{point}" if point else "")
            print(f"{wl:<13} {label:<10} {env:<10} {n:>3} {it_sd:>8.3f} {sds[0]:>12.3f} {sds[1]:>7.3f} "
                  f"{sds[2]:>7.3f} {math.sqrt(between) if math.isfinite(between) else math.nan:>8.3f} {opt:>9.1f}")
    print()
    print(f"{'workload':<13} {'target':>6} {'rounds':>6} {'usable':>6} {'reached':>8} {'worst':<22} "
          f"{'pair SD':>7} {'ideal':>6} {'min':>6} {'stop':<12}")
    for wl, r in prec.iterrows():
        print(f"{wl:<13} {r.target_pct:>5.1f}% {r.rounds:>6} {r.usable:>6} {r.halfwidth_pct:>7.2f}% "
              f"{(str(r.worst_env) + ' ' + str(r.worst_metric))[:22]:<22} {r.sd_log:>7.3f} {r.ideal_rounds:>6} "
              f"{r.seconds / 60:>5.1f} {r.stop:<12}")


if __name__ == "__main__":
    study(Path(sys.argv[1] if len(sys.argv) > 1 else "results"))
