"""Interleaved against sequential rounds, from a finished run of config/order_study.yaml (or any run
whose workloads come in pairs ``W`` and ``W_seq``): prints figures, changes nothing.

    python scripts/order_study.py [RESULTS_DIR]      (default: results)

Per workload pair and primary metric: the pair SD (the SD over rounds of log(E_r / native_r), the
quantity every interval and decision rests on) of the A/A environment and of each other
environment, in each order, and their ratio sequential / interleaved (> 1: interleaving helps).
Then, per order, where the measuring time went: the measured iterations' share of the rounds' wall
time (duty cycle) and the warm-up iterations' share, from each round's ``round.json`` and the cells'
iteration times.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from isobench import rounds, stats
from isobench.workloads import KINDS

BASELINE = "native"
SUFFIX = "_seq"


def pair_sds(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per workload x environment x primary metric x point: the pair SD against native."""
    values = rounds.cell_values(cells)
    rows = []
    for wl, g in values.groupby("workload"):
        kind = cells.loc[cells["workload"] == wl, "kind"].iloc[0]
        primary = {m for m, spec in KINDS[kind].METRICS.items() if spec.primary}
        for (env, metric, point), _ in g.groupby(["env", "metric", "point"]):
            if env == BASELINE or metric not in primary:
                continue
            x, y, common = rounds.paired(g, env, BASELINE, metric, point)
            ps = stats.paired_ratio(x, y, min_rounds=2)
            rows.append({"workload": wl, "env": env, "metric": metric, "point": point, "n": ps.n,
                         "sd_log": ps.sd_log})
    return pd.DataFrame(rows)


def duty_cycle(results: Path, cells: pd.DataFrame) -> pd.DataFrame:
    """Per order: rounds' wall time, measured and warm-up iteration time, and their shares."""
    it = cells.drop_duplicates(["env", "workload", "round", "iteration"]).copy()
    it["seconds"] = (it["ended_at"] - it["started_at"]).dt.total_seconds()
    rows = []
    for path in sorted((results / "raw").glob("*/round-*/round.json")):
        rec = json.loads(path.read_text())
        mine = it[(it["workload"] == rec["workload"]) & (it["round"] == rec["round"])]
        rows.append({"order": rec["mode"], "workload": rec["workload"], "round": rec["round"],
                     "wall_s": rec["wall_seconds"], "measured_s": mine.loc[~mine["warmup"], "seconds"].sum(),
                     "warmup_s": mine.loc[mine["warmup"], "seconds"].sum()})
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    out = df.groupby("order")[["wall_s", "measured_s", "warmup_s"]].sum()
    out["duty_cycle"] = out["measured_s"] / out["wall_s"]
    out["warmup_share"] = out["warmup_s"] / out["wall_s"]
    out["rounds"] = df.groupby("order").size()
    return out


def main(results: Path) -> None:
    cells = pd.read_parquet(results / "aggregate" / "cells.parquet")
    cells = cells[~cells["flagged"]] if "flagged" in cells else cells
    sds = pair_sds(cells)
    print("pair SD of log(E/native) per round; ratio = sequential / interleaved (> 1: interleaving helps)\n")
    print(f"{'workload':<14} {'env':<11} {'metric':<22} {'n':>3} {'interleaved':>12} {'sequential':>11} {'ratio':>7}")
    ratios: dict[str, list[float]] = {}
    for r in sds[~sds["workload"].str.endswith(SUFFIX)].itertuples():
        seq = sds[(sds["workload"] == r.workload + SUFFIX) & (sds["env"] == r.env) & (sds["metric"] == r.metric)
                  & (sds["point"] == r.point)]
        if seq.empty:
            continue
        s = float(seq["sd_log"].iloc[0])
        ratio = s / r.sd_log if r.sd_log > 0 else math.nan
        ratios.setdefault(r.workload, []).append(ratio)
        label = r.metric + (f" {r.point}" if r.point else "")
        print(f"{r.workload:<14} {r.env:<11} {label:<22} {r.n:>3} {r.sd_log:>12.4f} {s:>11.4f} {ratio:>7.2f}")
    print()
    for wl, rs in ratios.items():
        fin = [x for x in rs if math.isfinite(x)]
        gm = float(np.exp(np.mean(np.log(fin)))) if fin else math.nan
        print(f"{wl:<14} geometric mean ratio over its comparisons: {gm:.2f}")
    duty = duty_cycle(results, cells)
    if not duty.empty:
        print("\nwhere the measuring time went, per order (sum over the rounds of round.json wall time):")
        for order, r in duty.iterrows():
            print(f"  {order:<12} {int(r.rounds):>3} rounds, {r.wall_s / 60:6.1f} min: measured iterations "
                  f"{100 * r.duty_cycle:4.1f} %, warm-up iterations {100 * r.warmup_share:4.1f} %")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("results"))
