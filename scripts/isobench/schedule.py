"""The time box: after each batch of rounds, which workloads get more rounds, how many, and on which
environments, so that the run decides as much as it can within ``rounds.budget_minutes`` of
measuring in total.

Each workload's own decision (:func:`isobench.rounds.decide`) says whether its comparisons are
decided, how many rounds the undecided ones need and which environments the next rounds must
measure. :func:`allocate` then spends what is left of the budget where a decision is nearest for
the time it costs: workloads are served in order of the comparisons their next rounds are expected
to settle per second of measuring, each getting the rounds it asked for while they fit; a workload
that gets none this time stays open and is reconsidered after the next batch. When nothing fits,
every open workload stops with "time budget". The rule is a pure function of the measured cells and
the policies, so a rerun with nothing changed decides the same.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from . import rounds as rounds_mod


def round_cost_s(cells: pd.DataFrame, workload: str, envs: list[str]) -> float:
    """Estimated wall seconds of one round of ``workload`` measuring ``envs``: the mean measured
    time of each environment's cells (start, preparation, iterations, stop), summed."""
    c = cells[cells["workload"] == workload].drop_duplicates(["env", "round"])
    per_env = c.groupby("env")["cell_seconds"].mean()
    known = [float(per_env[e]) for e in envs if e in per_env.index and math.isfinite(per_env[e])]
    if not known:
        return math.nan
    # an environment without a measured cell yet costs what the others cost on average
    return sum(known) + (len(envs) - len(known)) * (sum(known) / len(known))


def open_comparisons(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The workload's primary comparisons still open (rounds.decide marks them ``open``)."""
    return [c for c in record.get("comparisons", [])
            if c.get("open", c.get("decision") in ("undecided", "no interval"))]


def expected_settled(record: dict[str, Any], rounds: int) -> int:
    """How many environments ``rounds`` more rounds are expected to settle: those all of whose open
    comparisons (metrics, sweep points) are expected to settle by then; at least one when any is
    open (the estimate of a noisy SD is rough). Counted per environment, not per metric or point,
    so a workload with many sweep points is not served before one with a single metric: the
    user's question is per environment and workload."""
    opened = open_comparisons(record)
    if not opened:
        return 0
    settles: dict[str, bool] = {}
    for c in opened:
        ok = (c.get("settle_rounds") or math.inf) <= rounds
        settles[c.get("env", "")] = settles.get(c.get("env", ""), True) and ok
    return max(1, sum(settles.values()))


def allocate(records: dict[str, dict[str, Any]], costs: dict[str, float], left_s: float) -> dict[str, int]:
    """workload -> rounds its next batch gets, from what each asks (``record["next"]``), what one
    of its rounds costs and the seconds left (see the module doc)."""
    asks = {w: int(r["next"]) for w, r in records.items() if not r["done"] and int(r["next"]) > 0}
    score = {}
    for w, n in asks.items():
        cost = costs.get(w, math.nan)
        score[w] = expected_settled(records[w], n) / (n * cost) if math.isfinite(cost) and cost > 0 else math.inf
    out = {w: 0 for w in records}
    for w in sorted(asks, key=lambda w: (-score[w], w)):
        cost = costs.get(w, math.nan)
        if not math.isfinite(cost) or cost <= 0:
            out[w] = asks[w]
            continue
        fit = min(asks[w], math.floor(left_s / cost))
        if fit >= 1:
            out[w] = fit
            left_s -= fit * cost
    return out


def schedule(cells: pd.DataFrame, *, batch: int, policies: dict[str, dict[str, Any]], rounds: dict[str, int],
             planned: dict[str, dict[str, list[int]]], environments: dict[str, list[str]],
             primary: dict[str, list[str]], emulated: list[str], baseline: str, budget_s: float) -> dict[str, Any]:
    """After batch ``batch``: each workload's decision and the rounds (and environments) the next
    batch measures; ``done`` when no workload gets any. ``planned``: the rounds each environment of
    each workload was measured in so far (recorded, so that a missing cell can be told from one
    that was never planned)."""
    records: dict[str, dict[str, Any]] = {}
    for w in policies:
        rec = rounds_mod.decide(cells, policies[w], workload=w, rounds_measured=rounds[w], baseline=baseline,
                                primary=set(primary[w]), emulated=set(emulated), environments=list(environments[w]))
        rec.setdefault("measure", list(environments[w]))
        rec["measure"] = [e for e in environments[w] if e in set(rec["measure"]) | {baseline}]
        rec["planned"] = {e: sorted(r) for e, r in planned.get(w, {}).items()}
        records[w] = rec
    used_s = float(sum(r["seconds"] for r in records.values()))
    costs = {w: round_cost_s(cells, w, records[w]["measure"]) for w in records}
    grant = allocate(records, costs, budget_s - used_s)
    for w, rec in records.items():
        if not rec["done"] and grant[w] == 0 and not any(grant.values()):
            rec.update(done=True, stop="time budget")
        rec["next"] = grant[w] if not rec["done"] else 0
        rec["round_cost_s"] = None if not math.isfinite(costs[w]) else round(costs[w], 1)
    next_s = sum(grant[w] * costs[w] for w in grant if grant[w] and math.isfinite(costs[w]))
    return {"batch": batch, "done": not any(r["next"] for r in records.values()), "workloads": records,
            "used_s": round(used_s, 1), "budget_s": budget_s, "next_s": round(next_s, 1)}


def progress(record: dict[str, Any]) -> list[str]:
    """What a person watching the run wants after a batch: what is decided, what remains, the next
    batch and how long it should take."""
    decided: dict[str, int] = {}
    opened = []
    for w, r in record["workloads"].items():
        for c in r.get("comparisons", []):
            decided[c["decision"]] = decided.get(c["decision"], 0) + 1
        if not r["done"]:
            opened.append(f"{w} +{r['next']} round(s) on {', '.join(r['measure'])}" if r["next"]
                          else f"{w} (waits)")
    words = ", ".join(f"{n} {d}" for d, n in sorted(decided.items())) or "no comparison recorded"
    lines = [f"batch {record['batch']}: {record['used_s'] / 60:.1f} of {record['budget_s'] / 60:.0f} min measured; "
             f"comparisons: {words}"]
    if record["done"]:
        stops = sorted({f"{w}: {r['stop']}" for w, r in record["workloads"].items()})
        lines.append("done: " + "; ".join(stops))
    else:
        lines.append(f"next (~{record['next_s'] / 60:.1f} min): " + "; ".join(opened))
    return lines
