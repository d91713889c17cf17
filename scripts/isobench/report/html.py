"""The report page: a Jinja2 template (``templates/report.html.j2``, autoescaped) filled from a
ReportData and the rendered figures. This module only arranges what was read into rows for the
template (order, which cells, their words and CSS classes); every value is the aggregate stage's.

The template lives inside this package (``isobench/report/templates/``), not in the top-level
``report/`` folder: that one holds what Snakemake's own ``--report`` reads (captions, workflow.rst)
and the paper's data, whereas the template is code of this package and travels with it (found
from the package's path, whatever the working directory).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import jinja2

from .. import paper as paperlib
from . import fmt as f
from .figures import COST_SECTION, RenderedFigure, cost_frame, effects_of
from .inputs import ReportData
from .matrix import decision_matrix

TEMPLATES = Path(__file__).resolve().parent / "templates"
EMULATED = "emulated"

_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                          undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                          keep_trailing_newline=True)
_ENV.filters.update(fmt=f.fmt, ratio=f.fmt_ratio, pct=f.fmt_pct, when=f.when, settings=f.settings_text,
                    b64=lambda png: base64.b64encode(png).decode())


def _effect_cell(data: ReportData, row) -> dict[str, str]:
    """'12.3% slower' with its CI, coloured by the stored decision; 'emulated' for TCG environments.
    Keys: cls (of the td), title, text, ci ("" for no span).

    The words are the aggregate stage's decision (same / slower / faster / undecided / no interval);
    a table written before decisions existed shows the effect and whether it is significant, in
    neutral colours. No "noise" label: a significant effect is always said as one."""
    if row is None:
        return {"cls": "ns", "title": "no result", "text": "–", "ci": None}
    if data.is_emulated(row.env):
        return {"cls": "emu", "title": f"{row.effect}; ratio {f.fmt_ratio(row.ratio)}", "text": EMULATED,
                "ci": "TCG, not KVM"}
    if not f.finite(row.overhead_pct):
        return {"cls": "ns", "title": row.ci_note, "text": "undefined", "ci": None}
    ci = f.ci_words(row.overhead_ci_low, row.overhead_ci_high)
    decision = f.decision_of(row)
    if decision:
        cls = f.decision_class(decision)
    else:
        cls = ("slower" if row.overhead_pct > 0 else "faster") if row.significant else "ns"
    text = getattr(row, "decision_text", None)
    settle = f.settle_words(decision, getattr(row, "settle_rounds", None))
    title = "; ".join(filter(None, [text if isinstance(text, str) else "", settle, f"ratio {f.fmt_ratio(row.ratio)}",
                                    "" if decision else row.effect, row.reason]))
    if not f.finite(row.ratio_ci_low):
        ci = f"no interval: {row.n} rounds"
    miss = " ✗" if f.finite(row.target_pct) and f.finite(row.ratio_ci_low) and not row.target_met else ""
    title += f"; ±{f.fmt_pct(row.halfwidth_pct)}% reached, target ±{f.fmt_pct(row.target_pct)}%, {row.n} rounds"
    return {"cls": f"num {cls}", "title": title, "text": f.decision_short(row), "ci": ci + miss}


def _env_order(data: ReportData) -> dict[str, int]:
    return {e: i for i, e in enumerate(data.envs())}


def summary_rows(data: ReportData) -> tuple[list[str], list[dict[str, Any]]]:
    """The environments compared (columns) and one row per workload x metric x point."""
    s, o = data.summary, data.overhead
    envs = [e for e in data.envs() if e in set(s["env"])]
    others = [e for e in envs if e != data.baseline]
    eff = {(r.env, r.workload, r.metric, r.point): r for r in o.itertuples()}
    keys = sorted({(r.workload, r.metric, r.point) for r in s.itertuples()},
                  key=lambda k: (data.workload_rank(k[0]), k[0], k[1], f.point_key(k[2])))
    base = {(r.workload, r.metric, r.point): r for r in s[s["env"] == data.baseline].itertuples()}
    hib = {(r.workload, r.metric): bool(r.higher_is_better) for r in s.drop_duplicates(["workload", "metric"])
           .itertuples()}
    rows = []
    for wl, metric, point in keys:
        b = base.get((wl, metric, point))
        rows.append({"workload": wl, "metric": metric, "arrow": "↑" if hib[(wl, metric)] else "↓", "point": point,
                     "base": None if b is None else {
                         "text": f"{f.fmt(b.mean)} {b.unit}",
                         "ci": f"CI {f.fmt(b.ci_low)}–{f.fmt(b.ci_high)}" if f.finite(b.ci_low) else "no CI"},
                     "cells": [_effect_cell(data, eff.get((e, wl, metric, point))) for e in others]})
    return others, rows


def baseline_gaps(data: ReportData) -> dict[str, Any] | None:
    m = data.missing
    g = m[m["scope"] == "baseline"]
    if g.empty:
        return None
    wls = sorted(g["workload"], key=lambda w: (data.workload_rank(w), w))
    return {"workloads": ", ".join(wls), "it": "it" if len(wls) == 1 else "them", "why": g["reason"].iloc[0]}


def precision_rows(data: ReportData) -> list[dict[str, Any]]:
    rows = []
    for r in data.precision.itertuples():
        rows.append({"workload": r.workload, "target": r.target_pct, "reached": r.halfwidth_pct,
                     "widest": f"{r.worst_env} {r.worst_metric}{' ' + r.worst_point if r.worst_point else ''}",
                     "met": bool(r.met), "stop": r.stop, "rounds": r.rounds, "usable": r.usable,
                     "flagged": r.flagged, "sd_pct": r.sd_log * 100 if f.finite(r.sd_log) else None,
                     "ideal": r.ideal_rounds, "minutes": r.seconds / 60 if f.finite(r.seconds) else None,
                     "why": r.flagged_why})
    return rows


def environment_rows(data: ReportData) -> list[dict[str, Any]]:
    rows = []
    for env in data.envs():
        m = data.manifests.get(env, {})
        e = data.env_row(env)
        if env not in data.manifests:
            stands = ""
        elif data.is_emulated(env):
            stands = "none (emulated CPU)"
        else:
            stands = (e.paper_configs if e is not None else "") or "none"
        rows.append({"env": env, "driver": m.get("driver", data.driver(env)),
                     "available": bool(e.available) if e is not None else True,
                     "reason": e.reason if e is not None else "",
                     "has_results": bool(e.has_results) if e is not None else False,
                     "cpu": f.cpu_words(m.get("labels") or {}), "settings": f.settings_text(m.get("settings", {})),
                     "stands_for": stands})
    return rows


def missing_rows(data: ReportData) -> list[dict[str, Any]]:
    m = data.missing
    return [{"env": r.env, "workload": r.workload, "round": int(r.round)}
            for r in m[m["scope"] == "cell"].itertuples()]


def numbers_rows(data: ReportData, workload: str) -> list[dict[str, Any]]:
    s = data.summary[data.summary["workload"] == workload]
    eff = effects_of(data, workload)
    order = _env_order(data)
    rows = []
    for r in sorted(s.itertuples(), key=lambda r: (r.metric, f.point_key(r.point), order.get(r.env, 99))):
        note = "; ".join(filter(None, [r.ci_note, f"{r.n_outliers} outlier iteration(s) (kept)"
                                       if r.n_outliers else ""]))
        rows.append({"r": r, "ci": f"{f.fmt(r.ci_low)} – {f.fmt(r.ci_high)}" if f.finite(r.ci_low) else "–",
                     "cv": r.cv * 100 if f.finite(r.cv) else None, "note": note,
                     "effect": None if r.env == data.baseline else _effect_cell(data, eff.get((r.env, r.metric,
                                                                                              r.point)))})
    return rows


def paper_rows(data: ReportData, workload: str) -> dict[str, Any]:
    """Rows with a paper figure (agrees / differs / inconclusive) in full; the rest folded by
    environment and reason."""
    c = data.comparison[data.comparison["workload"] == workload]
    order = _env_order(data)
    judged = c[c["verdict"].isin(paperlib.JUDGED)]
    eff = effects_of(data, workload)
    rows = []
    for r in sorted(judged.itertuples(), key=lambda r: (r.metric, f.point_key(r.point), order.get(r.env, 99))):
        o = eff.get((r.env, r.metric, r.point))
        hib = bool(o.higher_is_better) if o is not None else True
        ours = f.fmt_ratio(r.ratio) + (f" ({f.fmt_ratio(r.ratio_ci_low)}–{f.fmt_ratio(r.ratio_ci_high)})"
                                       if f.finite(r.ratio_ci_low) else "")
        rows.append({"r": r, "ours": ours, "ours_words": f.decision_short(o) if o is not None else "",
                     "paper": f.ratio_words(r.paper_ratio, hib) if o is not None else f.fmt_ratio(r.paper_ratio),
                     "cls": {paperlib.AGREES: "verdict-agrees", paperlib.DIFFERS: "verdict-differs"}
                     .get(r.verdict, "verdict-nc")})
    folded: dict[tuple[str, str], list[str]] = {}
    for r in c[~c.index.isin(judged.index)].itertuples():
        folded.setdefault((r.env, r.reason), []).append(r.metric + (f"@{r.point}" if r.point else ""))

    def by_metric_point(w: str) -> tuple:
        metric, _, point = w.partition("@")
        return metric, f.point_key(point)
    rest = [{"env": env, "why": reason, "metrics": ", ".join(sorted(set(what), key=by_metric_point))}
            for (env, reason), what in sorted(folded.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0][1]))]
    return {"empty": c.empty, "rows": rows, "rest": rest}


def workload_view(data: ReportData, workload: str, figures: list[RenderedFigure]) -> dict[str, Any]:
    meta = data.workloads.get(workload, {})
    has = bool((data.summary["workload"] == workload).any())
    return {"name": workload, "kind": meta.get("kind", ""), "description": meta.get("description", ""),
            "metrics": [{"name": k, "unit": v.get("unit", ""), "better": "higher" if v.get("higher_is_better")
                         else "lower", "description": v.get("description", "")}
                        for k, v in sorted((meta.get("metrics") or {}).items())],
            "has_results": has, "figures": [fig for fig in figures if fig.section != COST_SECTION],
            "rerun": meta.get("rerun", ""),
            "numbers": numbers_rows(data, workload) if has else [],
            "paper": paper_rows(data, workload) if has else None}


def cost_rows(data: ReportData) -> list[dict[str, Any]]:
    """The CPU cost table: per workload, cost metric and sweep point ("" for the whole iteration),
    each environment's mean with its interval and its cost against the baseline with its interval
    (all the aggregate stage's numbers; ``point`` and ``subject`` read as "" where the table has none)."""
    c = cost_frame(data)
    if c.empty:
        return []
    order = _env_order(data)
    rows = []
    for r in sorted(c.itertuples(index=False), key=lambda r: (data.workload_rank(r.workload), r.workload, r.metric,
                                                              r.subject, f.point_key(r.point),
                                                              order.get(r.env, 99), r.env)):
        if r.env == data.baseline:
            vs = ""
        elif not f.finite(r.ratio):
            vs = r.ratio_note
        else:
            vs = f.cost_words(r.ratio) + (f" [{f.fmt_ratio(r.ratio_ci_low)}, {f.fmt_ratio(r.ratio_ci_high)}]"
                                          if f.finite(r.ratio_ci_low) else f" ({r.ratio_note})")
        ci = f"[{f.fmt(r.ci_low)}, {f.fmt(r.ci_high)}]" if f.finite(r.ci_low) else r.ci_note
        rows.append({"workload": r.workload, "metric": r.metric, "unit": r.unit, "env": r.env,
                     "point": r.point + (f" ({r.subject})" if r.subject else ""), "per_point": bool(r.point),
                     "mean": f.fmt(r.mean), "ci": ci, "vs": vs, "emulated": bool(r.emulated)})
    return rows


def calibration_view(data: ReportData) -> dict[str, Any]:
    c = data.calibration
    rows = [{"r": r, "ci": f"{f.fmt_ratio(r.ratio_ci_low)}–{f.fmt_ratio(r.ratio_ci_high)}"
             if f.finite(r.ratio_ci_low) else "no CI",
             "words": f"{r.env_b} {f.short_effect(r.diff_pct)} than {r.env_a}" if f.finite(r.diff_pct) else ""}
            for r in c.sort_values(["workload", "metric", "point", "env_a", "env_b"]).itertuples()]
    aa = data.aa_check.iloc[0]
    verdict = ("within what chance allows" if aa["within_chance"]
               else "MORE than chance allows: the intervals are too narrow for this host, treat every "
                    "'significant' with caution")
    return {"rows": rows, "k": int(aa["significant"]), "n": int(aa["judged"]), "conf": f"{aa['confidence']:.0%}",
            "allowed": f"{aa['expected']:.1f}", "verdict": verdict, "pairs": data.stats_meta.get("aa_pairs", [])}


def methods_view(data: ReportData) -> dict[str, Any]:
    hosts: dict[str, tuple[dict, list[str]]] = {}
    for env, w in data.warmups.items():
        h = w.get("host") or {}
        hosts.setdefault(h.get("fingerprint", "?"), (h, []))[1].append(env)
    host_rows = [{"h": h, "fp": fp, "envs": ", ".join(envs),
                  "stack": "; ".join(f"{k} {v}" for k, v in sorted((h.get("stack") or {}).items()) if v)}
                 for fp, (h, envs) in sorted(hosts.items())]
    inside = []
    for env in data.envs():
        w = data.warmups.get(env)
        if w is None:
            continue
        lab = (data.manifests.get(env) or {}).get("labels") or w.get("labels") or {}
        inside.append({"env": env, "cpu": f.cpu_words(lab), "ins": w.get("inside") or {},
                       "settings": w.get("settings") or {}, "started_at": w.get("started_at"),
                       "tools": "; ".join(f"{k}: {v}" for k, v in sorted((w.get("tools") or {}).items()))})
    s = data.summary
    versions: dict[tuple[str, str], list[str]] = {}
    for r in s.drop_duplicates(["workload", "env"]).itertuples():
        versions.setdefault((r.workload, r.tool_version or "(not recorded)"), []).append(r.env)
    order = _env_order(data)
    return {"hosts": host_rows, "inside": inside,
            "first": s["first_started_at"].min() if len(s) else None,
            "last": s["last_ended_at"].max() if len(s) else None,
            "versions": [{"workload": w, "version": v, "envs": sorted(envs, key=lambda e: order.get(e, 99))}
                         for (w, v), envs in sorted(versions.items())],
            "workloads": sorted(data.workloads.items()), "m": data.stats_meta, "margins": margin_rows(data),
            "verdict_rule": paperlib.verdict_rule(data.paper_tolerance), "tags": paperlib.TAGS}


def margin_rows(data: ReportData) -> list[dict[str, str]]:
    """The equivalence margins the stored decisions used, per workload and metric (as stored with
    each overhead row; none for a table written before decisions existed)."""
    o = data.overhead
    if "margin_pct" not in o.columns or o.empty:
        return []
    o = o[o["primary"].astype(bool)].drop_duplicates(["workload", "metric", "margin_pct"])
    return [{"workload": r.workload, "metric": r.metric, "margin": f.margin_words(r)}
            for r in sorted(o.itertuples(), key=lambda r: (data.workload_rank(r.workload), r.workload, r.metric))
            if f.margin_words(r)]


def aa_decisions(data: ReportData) -> list[dict[str, Any]]:
    """The stored decisions of each A/A environment's primary metrics, counted, and its false alarms
    listed (an A/A pair measures the same thing twice: "slower" or "faster" there is the method
    crying wolf). Empty for a table without decisions."""
    o = data.overhead
    if "decision" not in o.columns or o.empty:
        return []
    o = o[o["aa"].astype(bool) & o["primary"].astype(bool)]
    out = []
    for env in [e for e in data.envs() if e in set(o["env"])]:
        rows = sorted(o[o["env"] == env].itertuples(), key=lambda r: (data.workload_rank(r.workload), r.workload,
                                                                        r.metric, f.point_key(r.point)))
        words = [f.decision_of(r) or f.NO_DECISION for r in rows]
        counts = [{"word": d, "n": words.count(d), "cls": f.decision_class(d)}
                  for d in [*f.DECISIONS, f.NO_DECISION] if words.count(d)]
        alarms = [{"what": f"{r.workload} {r.metric}{' ' + r.point if r.point else ''}", "cls": f.decision_class(w),
                   "text": r.decision_text if isinstance(getattr(r, "decision_text", None), str) else w}
                  for r, w in zip(rows, words) if w in ("slower", "faster")]
        out.append({"env": env, "n": len(rows), "counts": counts, "alarms": alarms})
    return out


def render_html(data: ReportData, figures: dict[str, list[RenderedFigure]],
                overview: RenderedFigure | None = None) -> str:
    """The whole page."""
    p = data.precision
    missed = p[~p["met"].astype(bool)] if len(p) else p
    others, summary = summary_rows(data)
    return _ENV.get_template("report.html.j2").render(
        data=data, baseline=data.baseline, run=data.run, rounds_words=f.rounds_words(data.run),
        emulated=data.is_emulated, emulated_envs=[e for e in data.envs() if data.is_emulated(e)],
        workloads=data.workload_names(), overview=overview,
        precision=precision_rows(data), smoke={"any": len(p) > 0, "missed": list(missed["workload"]) if len(p) else [],
                                               "total": len(p), "quick": data.run.get("profile") == "quick"},
        summary_envs=others, summary=summary, gaps=baseline_gaps(data),
        min_rounds_ci=data.stats_meta.get("min_rounds_ci", 5), environments=environment_rows(data),
        missing=missing_rows(data),
        sections=[workload_view(data, w, figures.get(w, [])) for w in data.workload_names()],
        calibration=calibration_view(data), aa_decisions=aa_decisions(data), methods=methods_view(data),
        cost=cost_rows(data), matrix=decision_matrix(data),
        cost_figures=[fig for w in data.workload_names() for fig in figures.get(w, []) if fig.section == COST_SECTION],
        cost_basis=data.cpu_cost["basis"].iloc[0] if len(data.cpu_cost) else "")
