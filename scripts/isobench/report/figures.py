"""The report's figures (matplotlib, PNG bytes without metadata so the same inputs give the same bytes).

Per workload: lines for metrics swept over a numeric point (connections=10), bars for the others (a
panel per metric and point), latency percentiles (``*lat*_pNN``) as lines, for fio as a
completion-latency CDF drawn the paper's way (Fig. 7); and the at-a-glance forest plot of every
primary overhead. The CPU cost section's figures (the paper's Fig. 3 and its MySQL CPU plots) come
from the aggregate's ``cpu_cost`` table: CPU seconds per Gbit for network bandwidth, and for sweeps
with per-point rows the host CPUs busy per point and the throughput against them. Emulated (TCG)
environments are hatched or dashed and labelled EMULATED; the paper's figures (from the aggregate
stage's comparison table) are drawn only where they are comparable.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .. import paper as paperlib
from .fmt import (
    cost_words,
    decision_of,
    decision_short,
    finite,
    fmt,
    fmt_ratio,
    is_sweep,
    percentile_of,
    point_key,
    point_name,
    point_value,
)
from .inputs import DRIVER_FAMILY, ReportData

LXC_COLORS = ["#1f77b4", "#4a9bd6", "#17becf", "#2c5f8a", "#6baed6", "#08519c"]
KVM_COLORS = ["#d62728", "#ff7f0e", "#b35806", "#e6550d"]
NATIVE_COLORS = ["#333333", "#8c8c8c", "#5a5a5a"]
OCI_COLORS = ["#2ca02c", "#98df8a", "#1b7a1b", "#66c266"]
SANDBOX_COLORS = ["#9467bd", "#c5b0d5", "#6a3d9a"]
#: a palette per driver family (Driver.FAMILY)
FAMILY_COLORS = {"native": NATIVE_COLORS, "system container": LXC_COLORS, "application container": OCI_COLORS,
                 "sandbox": SANDBOX_COLORS, "virtual machine": KVM_COLORS}
EMULATED_COLOR = "#c7c7c7"
#: file name of the at-a-glance figure (a hyphen: no workload name can produce it)
OVERVIEW = "at-a-glance.png"
DPI = 96


def env_colors(data: ReportData) -> dict[str, str]:
    """A fixed colour per environment by its driver's family (Driver.FAMILY): greys for native,
    blues for system containers (LXC), greens for application containers (OCI), purples for
    sandboxes (gVisor), reds for virtual machines (KVM), pale for emulated."""
    out: dict[str, str] = {}
    counters: dict[str, int] = {}
    for env in data.envs():
        if data.is_emulated(env):
            out[env] = EMULATED_COLOR
            continue
        family = DRIVER_FAMILY.get(data.driver(env), "native")
        pal = FAMILY_COLORS.get(family, NATIVE_COLORS)
        i = counters.get(family, 0)
        counters[family] = i + 1
        out[env] = pal[i % len(pal)]
    return out



def _bar_tick(data: ReportData, env: str, eff) -> str:
    """The x label of a bar: the environment and its comparison with the baseline in words (the
    stored decision: '12.3% slower', 'same (±5%)', 'undecided (0.5% slower)'), or EMULATED."""
    if data.is_emulated(env):
        return f"{env}\nEMULATED (TCG)"
    if env == data.baseline or eff is None:
        return env
    return f"{env}\n{decision_short(eff)}"


def axis_label(what: str, unit: str) -> str:
    """An axis label: what is measured and its unit ('throughput (MB/s)')."""
    return f"{what} ({unit})" if unit else what


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()




def _grid(n: int, ncols: int = 2, w: float = 5.4, h: float = 3.8) -> tuple[Figure, list]:
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(max(w * ncols, 8.0), h * nrows + 0.5), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _maybe_log(ax, values: list[float], axis: str = "y") -> None:
    """Log scale when values span more than 10x (an emulated environment would flatten the rest),
    and only when all are positive (a zero bar would vanish)."""
    vals = [float(v) for v in values if finite(v)]
    if vals and min(vals) > 0 and max(vals) / min(vals) > 10:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")


def paper_lookup(data: ReportData, workload: str) -> dict[tuple[str, str, str], float]:
    """(env, metric, point) -> the paper's ratio, for comparable rows only (never emulated ones)."""
    c = data.comparison
    c = c[(c["workload"] == workload) & c["verdict"].isin(paperlib.JUDGED)]
    return {(r.env, r.metric, r.point): float(r.paper_ratio) for r in c.itertuples() if finite(r.paper_ratio)}


def effects_of(data: ReportData, workload: str) -> dict[tuple[str, str, str], Any]:
    o = data.overhead[data.overhead["workload"] == workload]
    return {(r.env, r.metric, r.point): r for r in o.itertuples()}


def _err(row) -> tuple[float, float]:
    lo = row.mean - row.ci_low if finite(row.ci_low) else 0.0
    hi = row.ci_high - row.mean if finite(row.ci_high) else 0.0
    return max(lo, 0.0), max(hi, 0.0)


def _fit_to_real(ax, data: ReportData, xs: list[str], rows: dict, markers: list[float]) -> None:
    """Scale the bar axis to the non-emulated environments, so their differences stay visible.

    An emulated bar that would tower over them (TCG latency is often 20x native) is clipped at the
    top of the axis and its value printed on it; a log axis is used only when the real environments
    themselves span more than 10x.
    """
    real = [e for e in xs if not data.is_emulated(e)]
    tops = [max(rows[e].mean, rows[e].ci_high if finite(rows[e].ci_high) else rows[e].mean) for e in real]
    tops = [t for t in tops + markers if finite(t)]
    _maybe_log(ax, [rows[e].mean for e in real] + markers)
    if ax.get_yscale() == "log" or not tops or max(tops) <= 0:
        ax.margins(y=0.1)
        return
    limit = max(tops) * 1.15
    if any(rows[e].mean > limit for e in xs):
        ax.set_ylim(top=limit)
        for i, e in enumerate(xs):
            if rows[e].mean > limit:
                ax.annotate(f"{fmt(rows[e].mean)} ↑ (off scale)", (i, limit), xytext=(0, -4),
                            textcoords="offset points", ha="center", va="top", rotation=90, fontsize=8)
    else:
        ax.margins(y=0.1)


def figure_bars(data: ReportData, workload: str, panels: list[tuple[str, str]]) -> Figure | None:
    """Median per environment with its 95 % CI, one panel per (metric, point); the paper's ratio as a marker."""
    s = data.summary[data.summary["workload"] == workload]
    if s.empty or not panels:
        return None
    colors, paper_r, effects = env_colors(data), paper_lookup(data, workload), effects_of(data, workload)
    envs = [e for e in data.envs() if e in set(s["env"])]
    fig, axes = _grid(len(panels))
    for ax, (metric, point) in zip(axes, panels):
        rows = {r.env: r for r in s[(s["metric"] == metric) & (s["point"] == point)].itertuples()}
        xs = [e for e in envs if e in rows]
        heights = [rows[e].mean for e in xs]
        errs = np.array([_err(rows[e]) for e in xs]).T
        bars = ax.bar(range(len(xs)), heights, yerr=errs, capsize=4, color=[colors[e] for e in xs],
                      edgecolor="black", linewidth=0.6, error_kw={"elinewidth": 1})
        for bar, e in zip(bars, xs):
            if data.is_emulated(e):
                bar.set_hatch("//")
        base = rows.get(data.baseline)
        first = True
        ticks, markers = [], []
        for i, e in enumerate(xs):
            key = (e, metric, rows[e].point)
            ticks.append(_bar_tick(data, e, effects.get(key)))
            if base is not None and key in paper_r:
                markers.append(base.mean * paper_r[key])
                ax.plot([i], [markers[-1]], marker="D", markersize=7, markerfacecolor="white",
                        markeredgecolor="black", linestyle="none",
                        label="paper's ratio × our native" if first else None)
                first = False
        ax.set_xticks(range(len(xs)), ticks, rotation=30, ha="right", fontsize=8, rotation_mode="anchor")
        unit = rows[xs[0]].unit if xs else ""
        direction = "higher is better" if xs and rows[xs[0]].higher_is_better else "lower is better"
        ax.set_title(f"{metric}{' @ ' + point if point else ''} ({direction})", fontsize=10)
        ax.set_ylabel(axis_label(metric, unit))
        ax.set_xlabel(f"environment (under each: against {data.baseline})", fontsize=8)
        _fit_to_real(ax, data, xs, rows, markers)
        ax.grid(axis="y", alpha=0.3)
        if not first:
            ax.legend(fontsize=7, loc="lower left", framealpha=0.9)
    fig.suptitle(f"{workload}: mean over rounds, whiskers 95% CI; below each name: vs {data.baseline}", fontsize=11)
    return fig


def figure_sweep(data: ReportData, workload: str, metrics: list[str]) -> Figure | None:
    """One line per environment against the sweep variable (connections, threads); paper dashed."""
    s = data.summary[(data.summary["workload"] == workload) & data.summary["metric"].isin(metrics)
                     & (data.summary["point"] != "")]
    if s.empty:
        return None
    colors, paper_r = env_colors(data), paper_lookup(data, workload)
    envs = [e for e in data.envs() if e in set(s["env"])]
    fig, axes = _grid(len(metrics))
    for ax, metric in zip(axes, metrics):
        sm = s[s["metric"] == metric]
        base = {r.point: r.mean for r in sm[sm["env"] == data.baseline].itertuples()}
        var = ""
        values = []
        for e in envs:
            rows = sorted(sm[sm["env"] == e].itertuples(), key=lambda r: point_key(r.point))
            if not rows:
                continue
            var = point_name(rows[0].point)
            x = [point_value(r.point) for r in rows]
            y = [r.mean for r in rows]
            values += y
            err = np.array([_err(r) for r in rows]).T
            label = f"{e} (EMULATED)" if data.is_emulated(e) else e
            ax.errorbar(x, y, yerr=err, marker="o", markersize=4, capsize=3, color=colors[e], label=label,
                        linestyle="--" if data.is_emulated(e) else "-")
            px = [(point_value(r.point), base[r.point] * paper_r[(e, metric, r.point)]) for r in rows
                  if (e, metric, r.point) in paper_r and r.point in base]
            if px:
                ax.plot(*zip(*px), marker="D", markerfacecolor="white", markeredgecolor=colors[e],
                        color=colors[e], linestyle=":", linewidth=1, label=f"{e}: paper's ratio × our native")
        unit = sm["unit"].iloc[0]
        direction = "higher is better" if bool(sm["higher_is_better"].iloc[0]) else "lower is better"
        ax.set_title(f"{metric} ({direction})", fontsize=10)
        ax.set_xlabel(var)
        ax.set_ylabel(axis_label(metric, unit))
        _maybe_log(ax, values)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(f"{workload}: mean over rounds per point, whiskers 95% CI", fontsize=11)
    return fig


def latency_families(metrics: list[str]) -> dict[str, list[tuple[float, str]]]:
    """Latency percentile metrics by family (``read_lat``): (percentile, metric) pairs."""
    families: dict[str, list[tuple[float, str]]] = {}
    for m in metrics:
        prefix, pct = percentile_of(m)
        families.setdefault(prefix, []).append((pct, m))
    return families


def figure_latency(data: ReportData, workload: str, metrics: list[str]) -> Figure | None:
    """Latency percentiles (p50, p99, ...) per environment, one panel per latency family."""
    s = data.summary[(data.summary["workload"] == workload) & data.summary["metric"].isin(metrics)]
    if s.empty:
        return None
    families = latency_families(metrics)
    colors = env_colors(data)
    envs = [e for e in data.envs() if e in set(s["env"])]
    fig, axes = _grid(len(families))
    for ax, (prefix, members) in zip(axes, sorted(families.items())):
        members.sort()
        values = []
        for e in envs:
            rows = {r.metric: r for r in s[s["env"] == e].itertuples()}
            pts = [(i, rows[m]) for i, (_, m) in enumerate(members) if m in rows]
            if not pts:
                continue
            y = [r.mean for _, r in pts]
            values += y
            label = f"{e} (EMULATED)" if data.is_emulated(e) else e
            ax.errorbar([i for i, _ in pts], y, yerr=np.array([_err(r) for _, r in pts]).T, marker="o",
                        capsize=3, color=colors[e], label=label,
                        linestyle="--" if data.is_emulated(e) else "-")
        ax.set_xticks(range(len(members)), [f"p{p:g}" for p, _ in members])
        ax.set_xlabel("percentile")
        ax.set_ylabel(axis_label(f"{prefix} latency", s[s["metric"] == members[0][1]]["unit"].iloc[0]))
        ax.set_title(f"{prefix} percentiles (lower is better)", fontsize=10)
        _maybe_log(ax, values)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(f"{workload}: latency percentiles, mean over rounds, whiskers 95% CI", fontsize=11)
    return fig


def paper_latency_points(data: ReportData, workload: str, metrics: list[str]) -> list[tuple[str, str, float]]:
    """The paper's absolute latency percentiles (its configuration's label, metric, value) for
    ``metrics``, from the comparison rows that have a verdict (never an emulated one), and the
    paper's native value of the same percentile; each configuration and metric once."""
    c = data.comparison
    c = c[(c["workload"] == workload) & c["verdict"].isin(paperlib.JUDGED) & c["metric"].isin(metrics)]
    out: dict[tuple[str, str], float] = {}
    for r in c.sort_values(["metric", "paper_config", "env"]).itertuples():
        if data.is_emulated(r.env):
            continue
        if finite(r.paper_native):
            out.setdefault(("Native", r.metric), float(r.paper_native))
        if finite(r.paper_value):
            out.setdefault((r.paper_label or r.paper_config, r.metric), float(r.paper_value))
    return [(label, metric, v) for (label, metric), v in out.items()]


PAPER_MARKERS = ["o", "s", "^", "D", "v", "P", "X"]


def figure_latency_cdf(data: ReportData, workload: str, metrics: list[str]) -> Figure | None:
    """The completion-latency CDF the paper's way (its Fig. 7), one panel per latency family
    (read_lat, write_lat): x the latency (the metric's unit), y the cumulative fraction (the
    percentile / 100), one line per environment with the 95 % CI of each percentile as horizontal
    whiskers; the paper's percentiles as hollow markers, absolute values on its own hardware."""
    s = data.summary[(data.summary["workload"] == workload) & data.summary["metric"].isin(metrics)
                     & (data.summary["point"] == "")]
    if s.empty:
        return None
    families = latency_families(metrics)
    colors = env_colors(data)
    envs = [e for e in data.envs() if e in set(s["env"])]
    fig, axes = _grid(len(families), ncols=1, w=10.0, h=4.4)
    for ax, (prefix, members) in zip(axes, sorted(families.items())):
        members.sort()
        pct_of = {m: p for p, m in members}
        real: list[float] = []       # what the axis is scaled to: the real environments and the paper
        off_scale: dict[str, float] = {}
        for e in envs:
            rows = {r.metric: r for r in s[s["env"] == e].itertuples()}
            pts = [(p / 100, rows[m]) for p, m in members if m in rows and finite(rows[m].mean)]
            if not pts:
                continue
            x = [r.mean for _, r in pts]
            if data.is_emulated(e):
                off_scale[e] = max(x)
            else:
                real += x + [r.ci_low for _, r in pts] + [r.ci_high for _, r in pts]
            ax.errorbar(x, [y for y, _ in pts], xerr=np.array([_err(r) for _, r in pts]).T, marker="o",
                        markersize=3, capsize=2, color=colors[e], label=e,
                        linestyle="--" if data.is_emulated(e) else "-")
        paper = paper_latency_points(data, workload, [m for _, m in members])
        for i, label in enumerate(dict.fromkeys(label for label, _, _ in paper)):
            pts = sorted((v, pct_of[m] / 100) for lab, m, v in paper if lab == label)
            real += [v for v, _ in pts]
            ax.plot(*zip(*pts), marker=PAPER_MARKERS[i % len(PAPER_MARKERS)], markersize=8, linestyle="none",
                    markerfacecolor="none", markeredgecolor="black", markeredgewidth=1.2,
                    label=f"paper: {label} (absolute, their hardware)")
        unit = s[s["metric"] == members[0][1]]["unit"].iloc[0]
        _maybe_log(ax, real or list(off_scale.values()), axis="x")
        # an emulated environment (TCG: often 20x slower) would squeeze the real ones into a corner
        shown = [float(v) for v in real if finite(v)]
        clipped = {e: v for e, v in off_scale.items() if shown and v > max(shown) * 1.5}
        if clipped:
            if ax.get_xscale() == "log":
                ax.set_xlim(min(shown) / 1.3, max(shown) * 1.3)
            else:
                ax.set_xlim(0, max(shown) * 1.1)
        for handle in ax.get_legend_handles_labels()[0]:
            e = handle.get_label()
            if e in off_scale:
                handle.set_label(f"{e} (EMULATED" + (f"; off scale, up to {fmt(clipped[e])} {unit})"
                                                     if e in clipped else ")"))
        ax.set_xlabel(f"completion latency ({unit})")
        ax.set_ylabel("cumulative fraction of I/Os")
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{prefix}: completion-latency CDF (the paper's Fig. 7)", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(f"{workload}: completion latency as a CDF, mean over rounds per percentile\n"
                 "horizontal whiskers: 95% CI of each percentile; hollow markers: the paper's values "
                 "(absolute, on its hardware)", fontsize=11)
    return fig


# -- the CPU cost (the aggregate's cpu_cost table) -------------------------------------------------
COST_SECTION = "cpu-cost"
PER_GBIT = "cpu_s_per_gbit"
HOST_CORES = "host_cpu_cores"
THROUGHPUT_SUFFIXES = ("_tps", "_rps")


def cost_frame(data: ReportData) -> pd.DataFrame:
    """``data.cpu_cost`` with ``point`` and ``subject`` as strings ("" where the table has none: a
    whole-iteration row, or an aggregate written before they existed)."""
    c = data.cpu_cost
    if c.empty:
        return pd.DataFrame(columns=["env", "workload", "point", "subject", "metric", "mean", "ci_low", "ci_high"])
    c = c.copy()
    for col in ("point", "subject"):
        c[col] = c[col].astype(object).where(c[col].notna(), "").astype(str) if col in c else ""
    return c


def _cost_envs(data: ReportData, envs: set[str]) -> list[str]:
    """The environments in the report's order, any the report does not know after them by name."""
    known = data.envs()
    return [e for e in known if e in envs] + sorted(envs - set(known))


def _cost_emulated(data: ReportData, row) -> bool:
    return data.is_emulated(row.env) or bool(getattr(row, "emulated", False))


def _cost_tick(data: ReportData, row) -> str:
    """The x label of a cost bar: the environment and its cost against the baseline with its interval."""
    if _cost_emulated(data, row):
        return f"{row.env}\nEMULATED (TCG)"
    if row.env == data.baseline or not finite(row.ratio):
        return row.env
    ci = (f"[{fmt_ratio(row.ratio_ci_low)}, {fmt_ratio(row.ratio_ci_high)}]" if finite(row.ratio_ci_low)
          else "(no CI)")
    return f"{row.env}\n{cost_words(row.ratio)} {ci}"


def figure_cost_per_gbit(data: ReportData, workload: str) -> Figure | None:
    """The paper's Fig. 3 our way: host CPU seconds per Gbit moved, a bar per environment with its
    95 % CI, the cost against the baseline with its interval under each name; None without rows."""
    c = cost_frame(data)
    c = c[(c["workload"] == workload) & (c["metric"] == PER_GBIT) & (c["point"] == "")]
    if c.empty:
        return None
    rows = {r.env: r for r in c.itertuples(index=False)}
    xs = _cost_envs(data, set(rows))
    colors = env_colors(data)
    fig = Figure(figsize=(max(8.0, 1.3 * len(xs) + 3), 4.6), layout="constrained")
    ax = fig.subplots()
    errs = np.array([_err(rows[e]) for e in xs]).T
    bars = ax.bar(range(len(xs)), [rows[e].mean for e in xs], yerr=errs, capsize=4,
                  color=[colors.get(e, EMULATED_COLOR if _cost_emulated(data, rows[e]) else "#777777") for e in xs],
                  edgecolor="black", linewidth=0.6, error_kw={"elinewidth": 1})
    for bar, e in zip(bars, xs):
        if _cost_emulated(data, rows[e]):
            bar.set_hatch("//")
    ticks = [_cost_tick(data, rows[e]) for e in xs]
    if len(xs) <= 6:
        ax.set_xticks(range(len(xs)), ticks, fontsize=8)
    else:
        ax.set_xticks(range(len(xs)), ticks, rotation=30, ha="right", fontsize=8, rotation_mode="anchor")
    ax.set_ylabel(axis_label("host CPU time per Gbit", rows[xs[0]].unit))
    ax.set_xlabel(f"environment (under each: CPU cost against {data.baseline})", fontsize=8)
    ax.set_title("CPU time per Gbit (not cycles: hardware counters not read); lower is better", fontsize=10)
    _fit_to_real(ax, data, xs, rows, [])
    ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{workload}: host CPU seconds per Gbit moved, mean over rounds, whiskers 95% CI\n"
                 f"below each name: cost vs {data.baseline} [95% CI]", fontsize=11)
    return fig


def cost_points(data: ReportData, workload: str, metric: str = HOST_CORES) -> pd.DataFrame:
    """The per-point cost rows of a sweep workload (numeric points only)."""
    c = cost_frame(data)
    c = c[(c["workload"] == workload) & (c["metric"] == metric) & (c["point"] != "")]
    return c[c["point"].map(lambda p: point_value(p) is not None)]


def throughput_metrics(data: ReportData, workload: str, subject: str) -> list[str]:
    """The throughput metrics (``*_tps``, ``*_rps``) a sweep point's CPU timing covers: those named
    ``{subject}_*``, or all of them for the empty subject."""
    s = data.summary[(data.summary["workload"] == workload) & (data.summary["point"] != "")]
    return sorted(m for m in set(s["metric"]) if m.endswith(THROUGHPUT_SUFFIXES)
                  and (not subject or m.startswith(subject + "_")))


def figure_cost_sweep(data: ReportData, workload: str) -> Figure | None:
    """The paper's MySQL CPU plots our way, for a sweep with per-point cost rows: the host CPUs
    busy against the sweep variable (a panel per subject the timing covers), and each throughput
    metric against the host CPUs busy at the same point; one line per environment, whiskers 95 % CI
    (both ways on the second). None without per-point rows."""
    c = cost_points(data, workload)
    if c.empty:
        return None
    subjects = sorted(set(c["subject"]))
    tput = [(m, subj) for subj in subjects for m in throughput_metrics(data, workload, subj)]
    s = data.summary[data.summary["workload"] == workload]
    summ = {(r.env, r.metric, r.point): r for r in s.itertuples()}
    colors = env_colors(data)
    envs = _cost_envs(data, set(c["env"]))
    fig, axes = _grid(len(subjects) + len(tput))
    var = point_name(c["point"].iloc[0])
    for ax, subj in zip(axes, subjects):
        cs = c[c["subject"] == subj]
        for e in envs:
            rows = sorted(cs[cs["env"] == e].itertuples(index=False), key=lambda r: point_key(r.point))
            if not rows:
                continue
            y = [r.mean for r in rows]
            emu = _cost_emulated(data, rows[0])
            ax.errorbar([point_value(r.point) for r in rows], y, yerr=np.array([_err(r) for r in rows]).T,
                        marker="o", markersize=4, capsize=3, color=colors.get(e, "#777777"),
                        label=f"{e} (EMULATED)" if emu else e, linestyle="--" if emu else "-")
        ax.set_title(f"host CPUs busy{' (' + subj + ')' if subj else ''} against {var}", fontsize=10)
        ax.set_xlabel(var)
        ax.set_ylabel("host CPUs busy (cores)")
        ax.set_ylim(bottom=0)        # CPUs: a linear count from none to the host's
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    for ax, (metric, subj) in zip(axes[len(subjects):], tput):
        cs = c[c["subject"] == subj]
        unit, real = "", []
        for e in envs:
            pairs = [(r, summ[(e, metric, r.point)]) for r in sorted(cs[cs["env"] == e].itertuples(index=False),
                                                                      key=lambda r: point_key(r.point))
                     if (e, metric, r.point) in summ]
            if not pairs:
                continue
            unit = pairs[0][1].unit
            emu = _cost_emulated(data, pairs[0][0])
            x, y = [cr.mean for cr, _ in pairs], [sr.mean for _, sr in pairs]
            real += [] if emu else y
            ax.errorbar(x, y, xerr=np.array([_err(cr) for cr, _ in pairs]).T,
                        yerr=np.array([_err(sr) for _, sr in pairs]).T, marker="o", markersize=4, capsize=2,
                        color=colors.get(e, "#777777"), label=f"{e} (EMULATED)" if emu else e,
                        linestyle="--" if emu else "-")
            if e == data.baseline:   # which point is which: the sweep value beside the baseline's
                for (cr, _), xi, yi in zip(pairs, x, y):
                    ax.annotate(f"{point_value(cr.point):g}", (xi, yi), xytext=(4, -10), textcoords="offset points",
                                fontsize=7, color="#555555")
        ax.set_title(f"{metric} against host CPUs busy (one point per {var})", fontsize=10)
        ax.set_xlabel("host CPUs busy (cores)")
        ax.set_ylabel(axis_label(metric, unit))
        ax.set_xlim(left=0)
        _maybe_log(ax, real)         # an emulated environment alone never makes the axis logarithmic
        ax.grid(alpha=0.3)
        if unit:
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                      title=f"numbers: {data.baseline}'s {var}", title_fontsize=7)
    fig.suptitle(f"{workload}: CPU cost per {var}, mean over rounds, whiskers 95% CI", fontsize=11)
    return fig


COST_PER_GBIT_CAPTION = (
    "Host CPU seconds (user + system + softirq, client included) per Gbit moved, both directions of an "
    "iteration together: CPU time, not cycles (hardware counters are not read). Bars: mean over rounds of "
    "each cell's value (the median of its measured iterations); whiskers: 95% t-interval of that mean; under "
    "each name: the cost against the baseline (geometric mean of the per-round ratios) with its 95% interval; "
    "hatched and labelled EMULATED: TCG, not a KVM figure.")
COST_SWEEP_CAPTION = (
    "First panel(s): host CPUs busy (user + system + softirq per wall second of the point, client included) at "
    "each sweep point, one line per environment; whiskers: 95% t-interval of the mean over rounds. Then each "
    "throughput metric against the host CPUs busy at the same point (the paper's MySQL throughput against CPU "
    "utilisation): whiskers both ways, the 95% intervals of the CPU cost (horizontal) and of the throughput "
    "(vertical). Dashed and labelled EMULATED: TCG, not a KVM figure.")


def cost_figures(data: ReportData, workload: str) -> list[RenderedFigure]:
    """The CPU cost section's figures of one workload (none when its rows are not there)."""
    out = []
    fig = figure_cost_per_gbit(data, workload)
    if fig is not None:
        out.append(RenderedFigure(f"{workload}-cpu-per-gbit.png",
                                  f"{workload}: host CPU seconds per Gbit per environment, bars with 95% CI whiskers",
                                  png_bytes(fig), COST_SECTION, COST_PER_GBIT_CAPTION))
    fig = figure_cost_sweep(data, workload)
    if fig is not None:
        out.append(RenderedFigure(f"{workload}-cpu-sweep.png",
                                  f"{workload}: host CPUs busy per sweep point and throughput against it, "
                                  "lines with 95% CI whiskers", png_bytes(fig), COST_SECTION, COST_SWEEP_CAPTION))
    return out


@dataclass(frozen=True)
class RenderedFigure:
    name: str      # file name in figures_dir
    title: str
    png: bytes
    #: where the report shows it: "" its workload's section, COST_SECTION the CPU cost section
    section: str = ""
    #: its own caption ("" for the workload sections' shared one)
    caption: str = ""


def workload_figures(data: ReportData, workload: str) -> list[RenderedFigure]:
    """The figures of one workload: lines for metrics swept over a numeric point (connections=10),
    bars for the others (a panel per metric and point), latency percentiles (``*lat*_pNN``) as lines
    (fio's as the paper's CDF), and its CPU cost figures (section COST_SECTION; named
    ``<workload>-cpu-per-gbit.png``, ``<workload>-cpu-sweep.png``)."""
    s = data.summary[data.summary["workload"] == workload]
    if s.empty:
        return cost_figures(data, workload)
    metrics = sorted(s["metric"].unique())
    swept = sorted(set(s.loc[s["point"] != "", "metric"])) if is_sweep(s["point"].unique()) else []
    flat = s[~s["metric"].isin(swept) | (s["point"] == "")]
    lat = [m for m in metrics if m not in swept and percentile_of(m)
           and set(flat.loc[flat["metric"] == m, "point"]) == {""}]
    panels = sorted({(r.metric, r.point) for r in flat.itertuples() if r.metric not in lat},
                    key=lambda mp: (mp[0], point_key(mp[1])))
    out = []
    if swept:
        fig = figure_sweep(data, workload, swept)
        if fig is not None:
            var = point_name(next(p for p in s["point"] if p))
            out.append(RenderedFigure(f"{workload}.png", f"{workload} against {var}", png_bytes(fig)))
    if panels:
        fig = figure_bars(data, workload, panels)
        if fig is not None:
            name = f"{workload}-bars.png" if swept else f"{workload}.png"
            out.append(RenderedFigure(name, f"{workload}", png_bytes(fig)))
    if lat:
        kind = data.workloads.get(workload, {}).get("kind") or (s["kind"].iloc[0] if "kind" in s else "")
        if kind == "fio":
            fig = figure_latency_cdf(data, workload, lat)
            title = f"{workload} completion-latency CDF"
        else:
            fig, title = figure_latency(data, workload, lat), f"{workload} latency percentiles"
        if fig is not None:
            out.append(RenderedFigure(f"{workload}-latency.png", title, png_bytes(fig)))
    return out + cost_figures(data, workload)


def overview_rows(data: ReportData) -> pd.DataFrame:
    """The overheads the at-a-glance figure shows: primary metrics of comparable environments."""
    o = data.overhead
    if o.empty:
        return o
    o = o[o["primary"].astype(bool) & ~o["emulated"].astype(bool)]
    order = {e: i for i, e in enumerate(data.envs())}
    wls = data.workload_names()
    keyed = o.assign(_w=o["workload"].map(lambda w: wls.index(w) if w in wls else 99),
                     _e=o["env"].map(lambda e: order.get(e, 99)),
                     _p=o["point"].map(point_key))
    return keyed.sort_values(["_w", "workload", "metric", "_p", "_e"]).drop(columns=["_w", "_e", "_p"])


#: a decision's colour in the figures (Okabe-Ito, as the report's tables); "" for no decision recorded
DECISION_COLORS = {"same": "#009e73", "slower": "#d55e00", "faster": "#0072b2", "undecided": "#e69f00",
                   "no interval": "#999999"}


def figure_overview(data: ReportData) -> Figure | None:
    """A forest plot: every primary overhead as a point with its 95 % interval, one line per
    workload x metric x point x environment, coloured by its stored decision (by environment for a
    table without decisions); the equivalence margin as a shaded band around 0 and the precision
    target as brackets around the point (where they are)."""
    rows = overview_rows(data)
    if rows.empty:
        return None
    colors = env_colors(data)
    decided = "decision" in rows.columns
    n = len(rows)
    fig = Figure(figsize=(9.5, max(2.5, 0.22 * n + 1.6)), layout="constrained")
    ax = fig.subplots()
    ys = np.arange(n)[::-1]
    labels, seen = [], set()
    for y, r in zip(ys, rows.itertuples()):
        labels.append(f"{r.workload} {r.metric}{' ' + r.point if r.point else ''} · {r.env}")
        margin = getattr(r, "margin_pct", None)
        if finite(margin):
            ax.fill_betweenx([y - 0.45, y + 0.45], -margin, margin, color="#e4e4e4", lw=0)
        if not finite(r.overhead_pct):
            continue
        d = decision_of(r)
        color = DECISION_COLORS.get(d, "#333333") if decided else colors.get(r.env, "#333333")
        label = (d or "no decision recorded") if decided and d not in seen else None
        seen.add(d)
        if finite(r.overhead_ci_low):
            ax.plot([r.overhead_ci_low, r.overhead_ci_high], [y, y], color=color, lw=2)
            ax.plot([r.overhead_pct], [y], "o", color=color, ms=5, label=label)
        else:
            ax.plot([r.overhead_pct], [y], "o", mfc="white", mec=color, ms=5, label=label)
        if finite(r.target_pct):
            t = r.target_pct
            ax.plot([r.overhead_pct - t, r.overhead_pct + t], [y, y], ls="none", marker="|", color="#555555", ms=9)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(ys, labels, fontsize=7)
    ax.set_ylim(-0.8, n - 0.2)
    ax.set_xlabel(f"overhead against {data.baseline}, % (positive = slower, negative = faster)")
    ax.set_ylabel("workload, primary metric, point · environment", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    if decided and seen:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="decision", title_fontsize=7)
    ax.set_title("Overheads with 95% intervals over rounds; | |: precision target; shaded: ± the equivalence "
                 "margin; open circle: no interval yet", fontsize=8)
    return fig
