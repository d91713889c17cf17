"""The decision matrix the report opens with: a row per primary metric (and sweep point) of each
workload, a column per environment, in each entry the stored decision (same / slower / faster /
undecided / no interval), the ratio to the baseline with its interval, the decision in words and,
where the paper has a comparable figure, the paper's ratio and verdict beside it.

Everything comes from the stored tables (``overhead``: ``decision``, ``decision_text``,
``margin_pct``, ``settle_rounds``; ``paper``: ``paper_ratio``, ``verdict``); nothing is decided
here. An overhead table written before decisions existed gives entries that say "no decision
recorded" and a warning above the matrix.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from . import fmt as f
from .inputs import ReportData

#: a primary metric measured at more sweep points than this gets one row, its points as a strip
FOLD_POINTS = 3
#: the paper table's word for a row the paper's figure cannot be compared with (no verdict shown)
NOT_COMPARABLE = "not comparable"
VERDICT_CLASS = {"agrees": "verdict-agrees", "differs": "verdict-differs"}


def has_decisions(data: ReportData) -> bool:
    """Whether the overhead table carries decisions (written by an aggregate stage that decides)."""
    return "decision" in data.overhead.columns


def _primary(data: ReportData):
    o = data.overhead
    if o.empty:
        return o
    return o[o["primary"].astype(bool) & ~o["aa"].astype(bool)]


def matrix_envs(data: ReportData) -> list[str]:
    """The columns: every environment with a primary comparison, in the report's order (the baseline
    and A/A environments are not columns: the A/A ones are in the calibration section)."""
    present = set(_primary(data)["env"]) if len(data.overhead) else set()
    return [e for e in data.envs() if e in present]


def _paper_claim(row, claim) -> dict[str, str] | None:
    if claim is None or claim.verdict == NOT_COMPARABLE or not f.finite(claim.paper_ratio):
        return None
    return {"ratio": f.ratio_words(claim.paper_ratio, row.higher_is_better), "verdict": claim.verdict,
            "cls": VERDICT_CLASS.get(claim.verdict, "verdict-nc"),
            "config": claim.paper_label or claim.paper_config}


def _interval(row) -> str:
    """'0.9002 [0.8986, 0.9018]': the ratio to the baseline and its 95 % interval."""
    if not f.finite(row.ratio):
        return "no ratio"
    if not f.finite(row.ratio_ci_low):
        return f"{f.fmt_ratio(row.ratio)}, no interval"
    return f"{f.fmt_ratio(row.ratio)} [{f.fmt_ratio(row.ratio_ci_low)}, {f.fmt_ratio(row.ratio_ci_high)}]"


def entry(data: ReportData, row, claim=None) -> dict[str, Any]:
    """One matrix entry from an overhead row (and the paper table's row for the same comparison).

    Keys: cls (of the td), word (the decision, "emulated" or "no decision recorded"), ratio (the
    ratio to the baseline and its interval), words (the decision in words, direction said), settle
    (what would settle an undecided one, else ""), paper (None, or its ratio, verdict and class),
    title (the tooltip)."""
    d = f.decision_of(row)
    text = getattr(row, "decision_text", None)
    text = text if isinstance(text, str) and text else ""
    effect = f.decision_short(row) + (f"; {f.ci_words(row.overhead_ci_low, row.overhead_ci_high)}"
                                      if f.finite(row.overhead_ci_low) else "")
    if data.is_emulated(row.env):
        return {"cls": "dec dec-emu", "word": "emulated", "ratio": _interval(row),
                "words": "QEMU TCG, not a KVM figure", "settle": "", "paper": None,
                "title": f"{row.env} is emulated (QEMU TCG): its numbers are not KVM figures; {text or effect}"}
    words = text or effect
    settle = f.settle_words(d, getattr(row, "settle_rounds", None))
    if settle and "round" in text:      # the stored words already say what would settle it
        settle = ""
    title = "; ".join(filter(None, [text or effect, f"margin {f.margin_words(row)}" if f.margin_words(row) else "",
                                    f"{row.n} rounds", row.reason]))
    return {"cls": f"dec {f.decision_class(d)}", "word": d or f.NO_DECISION, "ratio": _interval(row),
            "words": words, "settle": settle, "paper": _paper_claim(row, claim), "title": title}


def _strip(data: ReportData, rows: list) -> dict[str, Any]:
    """The entry of a swept metric folded into one row: a box per point, coloured by its decision,
    and the decisions counted."""
    rows = sorted(rows, key=lambda r: f.point_key(r.point))
    emulated = data.is_emulated(rows[0].env)
    counts = Counter(f.decision_of(r) or f.NO_DECISION for r in rows)
    order = [*f.DECISIONS, f.NO_DECISION]
    said = ", ".join(f"{counts[d]} {d}" for d in sorted(counts, key=lambda d: order.index(d) if d in order else 99))
    boxes = [{"cls": "dec-emu" if emulated else f.decision_class(f.decision_of(r)), "point": r.point,
              "title": f"{r.point}: " + (getattr(r, "decision_text", "") or f.decision_short(r))} for r in rows]
    return {"cls": "dec dec-strip" + (" dec-emu" if emulated else ""), "strip": boxes,
            "word": "emulated" if emulated else "",
            "counts": (f"{len(rows)} points, QEMU TCG, not a KVM figure" if emulated
                       else f"{said} of {len(rows)} points")}


def _span_workloads(rows: list[dict[str, Any]]) -> None:
    """Name each workload once: its first row gets ``span`` (the rows it has), the others 0."""
    for i, r in enumerate(rows):
        same = i > 0 and rows[i - 1]["workload"] == r["workload"]
        r["span"] = 0 if same else next((j for j, o in enumerate(rows[i:]) if o["workload"] != r["workload"]),
                                        len(rows) - i)


def decision_matrix(data: ReportData) -> dict[str, Any]:
    """The matrix for the template: envs (columns), rows (one per workload x primary metric x point,
    sweeps of more than FOLD_POINTS points folded into one row with a strip), points (the folded
    rows' points, each as a row of its own, for a details table), counts (how many comparisons ended
    in each decision, emulated ones left out), recorded (whether the table carries decisions) and
    absent (workloads with no comparison, and why)."""
    p = _primary(data)
    envs = matrix_envs(data)
    claims = {(c.env, c.workload, c.metric, c.point): c for c in data.comparison.itertuples()}
    by_key: dict[tuple[str, str], dict[str, list]] = {}
    for r in p.itertuples():
        by_key.setdefault((r.workload, r.metric), {}).setdefault(r.env, []).append(r)

    def row_of(wl: str, metric: str, point: str, cells: list, sample) -> dict[str, Any]:
        return {"workload": wl, "metric": metric, "point": point, "unit": sample.unit,
                "better": "higher is better" if sample.higher_is_better else "lower is better",
                "arrow": "↑" if sample.higher_is_better else "↓", "margin": f.margin_words(sample), "cells": cells}

    rows, points = [], []
    for (wl, metric) in sorted(by_key, key=lambda k: (data.workload_rank(k[0]), k[0], k[1])):
        per_env = by_key[(wl, metric)]
        pts = sorted({r.point for rs in per_env.values() for r in rs}, key=f.point_key)
        sample = next(iter(per_env.values()))[0]
        singles = []
        for pt in pts:
            cells = []
            for e in envs:
                r = next((r for r in per_env.get(e, []) if r.point == pt), None)
                cells.append(None if r is None else entry(data, r, claims.get((e, wl, metric, pt))))
            singles.append(row_of(wl, metric, pt, cells, sample))
        if len(pts) > FOLD_POINTS:
            rows.append({**row_of(wl, metric, f"{len(pts)} points ({pts[0]} … {pts[-1]})", [
                _strip(data, per_env[e]) if e in per_env else None for e in envs], sample), "folded": True})
            points += singles
        else:
            rows += singles
    _span_workloads(rows)
    _span_workloads(points)
    counted = [f.decision_of(r) or f.NO_DECISION for r in p.itertuples() if not data.is_emulated(r.env)]
    counts = Counter(counted)
    recorded = has_decisions(data)
    absent = []
    compared = set(p["workload"]) if len(p) else set()
    for wl in data.workload_names():
        if wl in compared:
            continue
        s = data.summary[data.summary["workload"] == wl]
        why = ("no results" if s.empty else f"no {data.baseline} results" if not (s["env"] == data.baseline).any()
               else "no other environment measured" if set(s["env"]) <= {data.baseline} else "no primary metric")
        absent.append({"workload": wl, "why": why})
    return {"envs": envs, "rows": rows, "points": points, "recorded": recorded, "absent": absent,
            "counts": [{"word": d, "n": counts[d], "cls": f.decision_class(d)}
                       for d in [*f.DECISIONS, f.NO_DECISION] if counts[d] or (recorded and d in f.DECISIONS)],
            "total": len(counted), "fold": FOLD_POINTS, "emulated_left_out": sum(data.is_emulated(e) for e in envs)}
