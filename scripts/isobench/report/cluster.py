"""The cluster report: each host's overheads side by side and, for a group of identical hosts, the
pooled estimate, from the host comparison tables only (:mod:`isobench.hosts`); each host's own full
report is linked. Nothing is computed here: rows are arranged and one figure is drawn."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from ..util import atomic_write_bytes
from . import fmt as f
from .figures import png_bytes
from .html import _ENV


def _cell(pct: Any, lo: Any, hi: Any, note: str = "") -> dict[str, str]:
    return {"text": f.short_effect(pct), "ci": f.ci_words(lo, hi) if f.finite(lo) else (note or "no interval")}


def figure_hosts(per_host: pd.DataFrame) -> bytes | None:
    """Every primary overhead, one row per environment x workload x metric x point, one marker per
    host with its interval."""
    rows = per_host[per_host["primary"].astype(bool)]
    if rows.empty:
        return None
    keys = rows[["workload", "metric", "point", "env"]].drop_duplicates().sort_values(["workload", "metric",
                                                                                        "point", "env"])
    hosts = sorted(rows["host"].unique())
    fig = Figure(figsize=(8, 0.45 * len(keys) + 1.2))
    ax = fig.subplots()
    labels = []
    for i, k in enumerate(keys.itertuples(index=False)):
        labels.append(f"{k.workload} {k.metric}{' ' + k.point if k.point else ''} — {k.env}")
        for j, h in enumerate(hosts):
            r = rows[(rows["host"] == h) & (rows["workload"] == k.workload) & (rows["metric"] == k.metric)
                     & (rows["point"] == k.point) & (rows["env"] == k.env)]
            if r.empty:
                continue
            r = r.iloc[0]
            y = i + (j - (len(hosts) - 1) / 2) * 0.2
            lo, hi = r["overhead_ci_low"], r["overhead_ci_high"]
            if f.finite(lo) and f.finite(hi):
                ax.plot([lo, hi], [y, y], color=f"C{j}", lw=2)
            ax.plot([r["overhead_pct"]], [y], "o", color=f"C{j}", label=h if i == 0 else None)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.set_xlabel("% slower than native (95% interval over rounds)")
    ax.legend(title="host", fontsize=8)
    fig.tight_layout()
    return png_bytes(fig)


def build_cluster_report(hosts_parquet: Path, groups_parquet: Path, host_reports: dict[str, Path],
                         out_html: Path) -> None:
    per_host = pd.read_parquet(hosts_parquet)
    groups = pd.read_parquet(groups_parquet)
    host_names = sorted(host_reports)
    sections = []
    for (wl, metric, point, env), g in per_host.groupby(["workload", "metric", "point", "env"], sort=True):
        by_host = {r.host: _cell(r.overhead_pct, r.overhead_ci_low, r.overhead_ci_high, r.ci_note)
                   for r in g.itertuples(index=False)}
        pooled = groups[(groups["workload"] == wl) & (groups["metric"] == metric) & (groups["point"] == point)
                        & (groups["env"] == env)]
        sections.append({
            "workload": wl, "metric": metric, "point": point, "env": env, "primary": bool(g["primary"].any()),
            "hosts": [by_host.get(h) for h in host_names],
            "groups": [{"group": p.group, "hosts": p.hosts, "these": _cell(p.overhead_pct, p.overhead_ci_low,
                                                                           p.overhead_ci_high, p.ci_note),
                        "kind": _cell(p.overhead_pct, p.overhead_re_ci_low, p.overhead_re_ci_high, p.re_ci_note),
                        "het_p": f.fmt(p.het_p_value)} for p in pooled.itertuples(index=False)],
        })
    links = {h: os.path.relpath(p, out_html.parent) for h, p in host_reports.items()}
    html = _ENV.get_template("cluster.html.j2").render(hosts=host_names, links=links, rows=sections,
                                                       figure=figure_hosts(per_host))
    atomic_write_bytes(out_html, html.encode())
