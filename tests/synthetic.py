"""Synthetic data whose true answer is known, shared by the statistics, host, report and paper tests.

* The noise model measured on this machine kind (``CELL_CV``, ``ITER_CV``, ``DRIFT_CV``): every cell
  (one fresh instance) has its own level (7 % between-cell CV), the iterations inside it vary less
  (2 %), and the host drifts between rounds (5 %), moving every environment of a round alike
  (``round_drift``, ``cell_iterations``; test_rounds.py, test_hosts.py).
* A synthetic run whose cells follow schema.SCHEMA exactly (``make_run``; the ``synthetic_run``
  fixture of conftest.py aggregates it once per session: test_stats.py, test_report.py,
  test_paper.py): a native baseline and an identical native_again (an A/A pair), three LXC
  environments (bridge, NAT, volume), a KVM environment, an emulated (TCG) KVM environment and an
  unavailable LXC one; a compression workload, a fio random-read workload with latency
  percentiles, a Redis-like sweep over connections, and a net_latency workload whose native cells
  are missing.
"""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from isobench import aggregate as agg
from isobench import rounds, stats
from isobench.collect import NO_POINT
from isobench.schema import SCHEMA

# -- the noise model -------------------------------------------------------------------------------
CELL_CV, ITER_CV, DRIFT_CV = 0.07, 0.02, 0.05


def round_drift(rng: np.random.Generator, n_rounds: int) -> np.ndarray:
    """The host's speed in each round (shared by every environment of the round)."""
    return rng.lognormal(0, DRIFT_CV, n_rounds)


def cell_iterations(rng: np.random.Generator, drift: np.ndarray, iterations: int, level: float) -> np.ndarray:
    """One environment's values, shape (rounds, iterations): ``level`` x the round's drift x the
    cell's own level x each iteration's noise."""
    cell = rng.lognormal(0, CELL_CV, len(drift))
    return level * drift[:, None] * cell[:, None] * rng.lognormal(0, ITER_CV, (len(drift), iterations))


# -- the synthetic run -----------------------------------------------------------------------------
HOST_CPU = {"accel": "none", "emulated": False}
KVM_SETTINGS = {"driver": "kvm", "tuning": "tuned", "cpus": 2, "memory_mib": 2048}
#: env -> (driver, settings as in the manifest, labels)
ENVS = {
    "native": ("native", {"driver": "native"}, HOST_CPU),
    "native_again": ("native", {"driver": "native"}, HOST_CPU),
    "lxc_bridge": ("lxc", {"driver": "lxc", "net": "bridge", "storage": "rootfs"}, HOST_CPU),
    "lxc_nat": ("lxc", {"driver": "lxc", "net": "nat", "storage": "rootfs"}, HOST_CPU),
    "lxc_volume": ("lxc", {"driver": "lxc", "net": "bridge", "storage": "volume"}, HOST_CPU),
    "kvm": ("kvm", KVM_SETTINGS, {"accel": "kvm", "emulated": False}),
    "kvm_tcg": ("kvm", KVM_SETTINGS, {"accel": "tcg", "emulated": True}),
}
UNAVAILABLE = {"lxc_host": ("lxc", {"driver": "lxc", "net": "host", "storage": "rootfs"}, "lxc-start not found")}

#: workload -> (kind, params, {metric: (unit, higher_is_better, native value)}, points)
WORKLOADS = {
    "compression": ("compression", {"threads": 2, "level": 2, "corpus_mib": 64, "seed": 1},
                    {"throughput": ("MB/s", True, 100.0)}, [""]),
    "fio_randread": ("fio", {"rw": "randread", "bs": "4k", "iodepth": 16, "numjobs": 1, "size_mib": 256,
                             "runtime_s": 10, "rwmixread": 70},
                     {"read_iops": ("IOPS", True, 20000.0), "read_bw": ("MB/s", True, 80.0),
                      "read_lat_p50": ("µs", False, 300.0), "read_lat_p99": ("µs", False, 450.0)}, [""]),
    "redis": ("redis", {"requests": 10000},
              {"set_rps": ("requests/s", True, 50000.0)}, ["connections=1", "connections=10", "connections=50"]),
    "net_latency": ("net_latency", {"protocol": "tcp", "seconds": 5},
                    {"latency": ("µs", False, 40.0)}, [""]),
}

#: env -> factor on the native value, in "performance" terms (0.9 = 10 % slower)
SPEED = {"native": 1.0, "native_again": 1.0, "lxc_bridge": 0.9, "lxc_nat": 0.995, "lxc_volume": 0.97,
         "kvm": 0.8, "kvm_tcg": 0.05}
#: relative noise of each env (lxc_nat is noisy, so its 0.5 % difference is not significant)
NOISE = {"lxc_nat": 0.08}
REDIS_SPEED = {"lxc_nat": 0.7, "lxc_bridge": 0.95}
ROUNDS, ITERATIONS, WARMUPS = 6, 5, 1
#: every environment of a round shares the round's host speed (drift): the pairing must remove it
ROUND_DRIFT = 0.05
T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def _value(env: str, wl: str, metric: str, point: str, hib: bool, native: float, rng: np.random.Generator,
           warmup: bool, drift: float = 1.0) -> float:
    speed = (REDIS_SPEED.get(env, SPEED[env]) if wl == "redis" else SPEED[env]) * drift
    if point.partition("=")[2].isdigit():
        native = native * min(1.0, int(point.split("=")[1]) / 10)
    v = native * speed if hib else native / speed
    v *= 1 + NOISE.get(env, 0.002) * rng.standard_normal()
    return v * (0.5 if hib else 2.0) if warmup else v   # warm-ups are far off: they must not count


SENTINEL = {"steal_pct": 0.1, "busy_pct": 60.0, "host_cpu_s": 12.0, "cpu_user_s": 8.0, "cpu_system_s": 3.0,
            "cpu_softirq_s": 0.9, "cpu_steal_s": 0.1, "env_cpu_s": 10.0, "procs_running": 2.0, "load1": 1.5,
            "cpu_mhz": 2000.0, "canary_start_s": 0.1, "canary_end_s": 0.101, "cell_seconds": 100.0, **NO_POINT}


def cell_table(env: str, wl: str, rnd: int, workloads: dict | None = None, **sentinel) -> pa.Table:
    """One cell's rows, built with schema.SCHEMA; ``sentinel`` overrides the host readings."""
    driver, settings, labels = ENVS[env]
    kind, params, metrics, points = (workloads or WORKLOADS)[wl]
    rng = stats.group_rng(7, env, wl, rnd)
    drift = 1 + ROUND_DRIFT * stats.group_rng(7, "drift", wl, rnd).standard_normal()
    rows = []
    own_cpu = {"env_cpu_s": math.nan} if driver == "native" else {}   # native: the host's own counters
    for it in range(1, WARMUPS + ITERATIONS + 1):
        warm = it <= WARMUPS
        start = T0 + timedelta(minutes=10 * rnd, seconds=20 * it)
        for point in points:
            for metric, (unit, hib, native) in metrics.items():
                rows.append({
                    "env": env, "driver": driver, "workload": wl, "kind": kind, "round": rnd, "iteration": it,
                    "warmup": warm, "point": point, "metric": metric,
                    "value": _value(env, wl, metric, point, hib, native, rng, warm, drift),
                    "unit": unit, "higher_is_better": hib, "started_at": start,
                    "ended_at": start + timedelta(seconds=15), "tool_version": f"{kind} 1.0",
                    "host": "testhost", "host_fingerprint": "abc123", "accel": labels["accel"],
                    "emulated": labels["emulated"],
                    "image_key": "img1", "settings": json.dumps(settings, sort_keys=True),
                    **{**SENTINEL, **own_cpu, **sentinel}})
    return pa.Table.from_pylist(rows, schema=SCHEMA)


POLICY = {"min_rounds": ROUNDS, "max_rounds": ROUNDS, "budget_s": 3600.0, "target_pct": 2.0,
          "max_steal_pct": 5.0, "max_canary_change_pct": 30.0}
PRIMARY = {"compression": {"throughput"}, "fio_randread": {"read_iops"}, "redis": {"set_rps"},
           "net_latency": {"latency"}}


def manifest(env: str) -> dict:
    if env in UNAVAILABLE:
        driver, settings, reason = UNAVAILABLE[env]
        return {"env": env, "driver": driver, "available": False, "reason": reason,
                "labels": {"accel": "none", "emulated": False}, "settings": settings}
    driver, settings, labels = ENVS[env]
    return {"env": env, "driver": driver, "available": True, "reason": "", "labels": labels, "settings": settings}


def warmup_record(env: str, workloads: dict | None = None) -> dict:
    driver, settings, labels = ENVS[env]
    return {"env": env, "driver": driver, "labels": labels, "settings": settings,
            "host": {"cpu_model": "Synthetic CPU @ 2.0GHz", "cores": 2, "memory_mib": 7900, "kernel": "6.1.0-test",
                     "cgroup_layout": "v2", "virtualization": "kvm_pvm", "fingerprint": "abc123",
                     "hostname": "testhost", "arch": "x86_64"},
            "inside": {"nproc": 2, "mem_mib": 2000 if driver != "native" else 7900, "kernel": "6.1.0-test",
                       "cpu_model": "Synthetic CPU @ 2.0GHz", "cgroup_mem": "max"},
            "tools": {k: f"{k} 1.0" for k, *_ in (workloads or WORKLOADS).values()}, "started_at": T0.isoformat()}


def make_run(root: Path, workloads: dict | None = None) -> dict:
    """Write the synthetic run under root (``workloads``: another table of the WORKLOADS form);
    return the paths the stages take."""
    workloads = WORKLOADS if workloads is None else workloads
    cells = []
    for env in ENVS:
        for wl in workloads:
            if wl == "net_latency" and env in ("native", "native_again"):
                continue  # the baseline's cells of this workload are missing
            for rnd in range(1, ROUNDS + 1):
                p = root / "cells" / env / wl / f"round-{rnd}.parquet"
                p.parent.mkdir(parents=True, exist_ok=True)
                pq.write_table(cell_table(env, wl, rnd, workloads), p)
                cells.append(p)
    all_cells = agg.read_cells(cells)
    batches = []
    for wl in workloads:
        record = rounds.decide(all_cells, POLICY, workload=wl, rounds_measured=ROUNDS, baseline="native",
                               primary=PRIMARY.get(wl, set()), emulated={"kvm_tcg"})
        p = root / "rounds" / wl / "batch-0.json"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(record))
        batches.append(p)
    manifests, warmups = [], []
    for env in [*ENVS, *UNAVAILABLE]:
        p = root / "provision" / f"{env}.json"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(manifest(env)))
        manifests.append(p)
        if env in ENVS:
            w = root / "warmup" / f"{env}.json"
            w.parent.mkdir(parents=True, exist_ok=True)
            w.write_text(json.dumps(warmup_record(env, workloads)))
            warmups.append(w)
    doc = {"_run": {"profile": "quick", "seed": 20150329,
                    "rounds": {"min": ROUNDS, "max": ROUNDS, "budget_minutes": 60}, "iterations": ITERATIONS,
                    "warmup_iterations": WARMUPS, "baseline": "native",
                    "environments": [*ENVS, *UNAVAILABLE], "workloads": list(workloads),
                    "limits": {"cpus": 2, "memory_mib": 2048}}}
    for wl, (kind, params, metrics, _) in workloads.items():
        doc[wl] = {"kind": kind, "description": f"synthetic {kind}", "params": params,
                   "metrics": {m: {"unit": u, "higher_is_better": h, "description": f"{m} (synthetic)"}
                               for m, (u, h, _) in metrics.items()},
                   "rerun": f"snakemake --cores 1 all --forcerun results/raw/{wl}/round-*"}
    wj = root / "provision" / "workloads.json"
    wj.write_text(json.dumps(doc))
    return {"cells": cells, "manifests": manifests, "warmups": warmups, "workloads": wj, "batches": batches}


def agg_outputs(out: Path) -> agg.Outputs:
    """The aggregate stage's named outputs under one folder (file names of the tests' choosing:
    the pipeline's are those rules/aggregate.smk declares)."""
    return agg.Outputs.of({f.name: out / (f.name.removesuffix("_csv") + ".csv" if f.name.endswith("_csv")
                                          else f.name + ".parquet") for f in dataclasses.fields(agg.Outputs)})
