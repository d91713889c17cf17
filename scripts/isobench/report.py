"""The report: one self-contained HTML file (inline CSS, figures as base64 PNG), from stored outputs only.

Reads the aggregate tables (summary, overhead, calibration and their stored statistics parameters),
the environment manifests, the warm-up records, the workload descriptions (with the run record under
``_run``) and the paper's results. Nothing is measured or recomputed here except the comparison with
the paper, which is a lookup. The same inputs give the same bytes: no generation timestamp, figures
saved without metadata, every table sorted.

Layout, top to bottom: the summary table (each environment as "% slower/faster than native" with its
CI; emulated environments say "emulated"), environments and their status, missing cells, one
section per workload (figure, numbers, paper comparison, rerun command), the A/A noise floor, and
the methods (host, environments as seen from inside, tools, run settings, dates, statistics).

Emulated (TCG) environments are labelled "emulated" in every table, figure and heading they appear
in, and never get a paper-KVM comparison.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from . import paper as paperlib
from .aggregate import CALIBRATION_COLUMNS, PRECISION_COLUMNS, read_metadata
from .util import atomic_write_bytes, read_json

DRIVER_RANK = {"native": 0, "lxc": 1, "kvm": 2}
PERCENTILE = re.compile(r"^(?P<prefix>.*?)_?p(?P<pct>\d+(?:\.\d+)?)$")
POINT = re.compile(r"^(?P<name>[A-Za-z_][\w.-]*)=(?P<value>-?\d+(?:\.\d+)?)$")
EMULATED = "emulated"
LXC_COLORS = ["#1f77b4", "#4a9bd6", "#17becf", "#2c5f8a", "#6baed6", "#08519c"]
KVM_COLORS = ["#d62728", "#ff7f0e", "#b35806", "#e6550d"]
NATIVE_COLORS = ["#333333", "#8c8c8c", "#5a5a5a"]
EMULATED_COLOR = "#c7c7c7"
#: file name of the at-a-glance figure (a hyphen: no workload name can produce it)
OVERVIEW = "at-a-glance.png"
DPI = 96


# -- inputs ----------------------------------------------------------------------------------------
@dataclass
class ReportData:
    baseline: str
    summary: pd.DataFrame
    overhead: pd.DataFrame
    calibration: pd.DataFrame
    precision: pd.DataFrame
    stats_meta: dict[str, Any]
    manifests: dict[str, dict[str, Any]]
    warmups: dict[str, dict[str, Any]]
    workloads: dict[str, dict[str, Any]]
    run: dict[str, Any]
    paper: paperlib.Paper
    comparison: pd.DataFrame

    @cached_property
    def _emulated(self) -> frozenset[str]:
        """Emulated by its manifest's labels or by any of its result rows."""
        by_rows = set(self.summary.loc[self.summary["emulated"].astype(bool), "env"])
        by_labels = {e for e, m in self.manifests.items() if (m.get("labels") or {}).get("emulated")}
        return frozenset(by_rows | by_labels)

    @cached_property
    def _drivers(self) -> dict[str, str]:
        out = {r.env: str(r.driver) for r in self.summary.drop_duplicates("env").itertuples()}
        out.update({e: str(m.get("driver", "")) for e, m in self.manifests.items()})
        return out

    def is_emulated(self, env: str) -> bool:
        return env in self._emulated

    def driver(self, env: str) -> str:
        return self._drivers.get(env, "")

    @cached_property
    def _envs(self) -> tuple[str, ...]:
        names = set(self.manifests) | set(self.summary["env"])
        return tuple(sorted(names, key=lambda e: (e != self.baseline, DRIVER_RANK.get(self.driver(e), 9),
                                                  self.is_emulated(e), e)))

    def envs(self) -> list[str]:
        """Every environment, the baseline first, then by driver (native, lxc, kvm) and name."""
        return list(self._envs)

    def workload_names(self) -> list[str]:
        listed = [w for w in self.run.get("workloads", []) if w in self.workloads]
        rest = sorted((set(self.workloads) | set(self.summary["workload"])) - set(listed))
        return listed + rest


def _read_table(path: Path) -> pd.DataFrame:
    df = pd.read_parquet(path)
    for col in df.columns:
        if pd.api.types.is_string_dtype(df[col]) and not pd.api.types.is_bool_dtype(df[col]):
            df[col] = df[col].astype(object)
    return df


def load_inputs(aggregate_dir: Path, env_manifests: Iterable[Path], warmups: Iterable[Path],
                workloads_json: Path, *, baseline: str | None = None,
                paper_results: Path | str = paperlib.DEFAULT_PATH) -> ReportData:
    """Everything the report shows, read from stored files.

    ``baseline`` defaults to the one the aggregate step used (stored with its tables), so the two
    cannot disagree.
    """
    aggregate_dir = Path(aggregate_dir)
    summary = _read_table(aggregate_dir / "summary.parquet")
    overhead = _read_table(aggregate_dir / "overhead.parquet")
    calib_path = aggregate_dir / "calibration.parquet"
    calibration = (_read_table(calib_path) if calib_path.exists()
                   else pd.DataFrame(columns=list(CALIBRATION_COLUMNS)))
    prec_path = aggregate_dir / "precision.parquet"
    precision = (_read_table(prec_path) if prec_path.exists()
                 else pd.DataFrame(columns=list(PRECISION_COLUMNS)))
    manifests = {m["env"]: m for m in (read_json(p) for p in sorted(map(Path, env_manifests), key=str))}
    warm = {w["env"]: w for w in (read_json(p) for p in sorted(map(Path, warmups), key=str))}
    described = read_json(workloads_json)
    run = described.pop("_run", {}) or {}
    paper = paperlib.load(paper_results)
    comparison = paperlib.compare(overhead, manifests, described, paper)
    meta = read_metadata(aggregate_dir / "summary.parquet")
    baseline = baseline or meta.get("baseline") or "native"
    return ReportData(baseline, summary, overhead, calibration, precision, meta, dict(sorted(manifests.items())),
                      dict(sorted(warm.items())), described, run, paper, comparison)


# -- small helpers ---------------------------------------------------------------------------------
def esc(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def finite(x: Any) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def fmt(x: Any) -> str:
    """A measured number for people: 4 significant digits, thousands separated."""
    if not finite(x):
        return "–"
    x = float(x)
    a = abs(x)
    if a >= 1000:
        return f"{x:,.0f}"
    if a >= 100:
        return f"{x:.1f}"
    if a >= 1:
        return f"{x:.3g}" if a < 10 else f"{x:.2f}".rstrip("0").rstrip(".")
    return f"{x:.4g}"


def fmt_ratio(x: Any) -> str:
    return f"{float(x):.4g}" if finite(x) else "–"


def fmt_pct(x: Any) -> str:
    return f"{float(x):.1f}" if finite(x) else "–"


def point_key(point: str) -> tuple:
    m = POINT.match(point or "")
    return (m["name"], 0, float(m["value"])) if m else (point or "", 1, 0.0)


def point_value(point: str) -> float | None:
    m = POINT.match(point or "")
    return float(m["value"]) if m else None


def is_sweep(points: Iterable[str]) -> bool:
    pts = [p for p in points if p]
    return bool(pts) and all(point_value(p) is not None for p in pts)


def percentile_of(metric: str) -> tuple[str, float] | None:
    m = PERCENTILE.match(metric)
    if not m or "lat" not in m["prefix"]:
        return None
    return m["prefix"], float(m["pct"])


def short_effect(pct: Any) -> str:
    if not finite(pct):
        return "–"
    if round(float(pct), 1) == 0:
        return "same"
    return f"{abs(float(pct)):.1f}% {'slower' if pct > 0 else 'faster'}"


def ci_words(low: Any, high: Any) -> str:
    """The CI of an overhead percentage (positive = slower) in the words of the effect:
    'CI 10.1–106.5% faster', 'CI 6.5–28.3% slower', 'CI 8.3% faster to 34.4% slower'."""
    if not (finite(low) and finite(high)):
        return "no CI (n<3)"
    low, high = float(low), float(high)
    if low >= 0:
        return f"CI {low:.1f}–{high:.1f}% slower"
    if high <= 0:
        return f"CI {-high:.1f}–{-low:.1f}% faster"
    return f"CI {-low:.1f}% faster to {high:.1f}% slower"


def env_colors(data: ReportData) -> dict[str, str]:
    """A fixed colour per environment: greys for native, blues for LXC, reds for KVM, pale for emulated."""
    out, counters = {}, {"native": 0, "lxc": 0, "kvm": 0}
    palettes = {"native": NATIVE_COLORS, "lxc": LXC_COLORS, "kvm": KVM_COLORS}
    for env in data.envs():
        if data.is_emulated(env):
            out[env] = EMULATED_COLOR
            continue
        d = data.driver(env)
        pal = palettes.get(d, NATIVE_COLORS)
        i = counters.get(d, 0)
        counters[d] = i + 1
        out[env] = pal[i % len(pal)]
    return out


def cpu_words(labels: dict[str, Any]) -> str:
    """How the environment's CPU is provided, in words."""
    accel = labels.get("accel", "")
    if labels.get("emulated") or accel == "tcg":
        return "EMULATED (QEMU TCG)"
    return {"none": "host CPU", "kvm": "KVM (hardware)"}.get(accel, accel)


def _bar_tick(data: ReportData, env: str, eff) -> str:
    """The x label of a bar: the environment and its effect against the baseline (or EMULATED)."""
    if data.is_emulated(env):
        return f"{env}\nEMULATED (TCG)"
    if env == data.baseline or eff is None:
        return env
    text = short_effect(eff.overhead_pct)
    return f"{env}\n{text}{' (n.s.)' if not eff.significant and finite(eff.overhead_pct) else ''}"


def env_html(data: ReportData, env: str) -> str:
    badge = ' <span class="badge emu" title="CPU emulated by QEMU TCG: not a KVM figure">emulated</span>' \
        if data.is_emulated(env) else ""
    return f"{esc(env)}{badge}"


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


# -- figures ---------------------------------------------------------------------------------------
def _grid(n: int, ncols: int = 2, w: float = 5.4, h: float = 3.8) -> tuple[Figure, list]:
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(max(w * ncols, 8.0), h * nrows + 0.5), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _maybe_log(ax, values: list[float]) -> None:
    """Log scale when values span more than 10x (an emulated environment would flatten the rest),
    and only when all are positive (a zero bar would vanish)."""
    vals = [float(v) for v in values if finite(v)]
    if vals and min(vals) > 0 and max(vals) / min(vals) > 10:
        ax.set_yscale("log")


def _paper_lookup(data: ReportData, workload: str) -> dict[tuple[str, str, str], float]:
    """(env, metric, point) -> the paper's ratio, for comparable rows only (never emulated ones)."""
    c = data.comparison
    c = c[(c["workload"] == workload) & c["verdict"].isin(paperlib.JUDGED)]
    return {(r.env, r.metric, r.point): float(r.paper_ratio) for r in c.itertuples() if finite(r.paper_ratio)}


def _effects(data: ReportData, workload: str) -> dict[tuple[str, str, str], Any]:
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
    colors, paper_r, effects = env_colors(data), _paper_lookup(data, workload), _effects(data, workload)
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
        ax.set_ylabel(unit)
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
    colors, paper_r = env_colors(data), _paper_lookup(data, workload)
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
            var = POINT.match(rows[0].point)["name"]
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
        ax.set_ylabel(unit)
        _maybe_log(ax, values)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(f"{workload}: mean over rounds per point, whiskers 95% CI", fontsize=11)
    return fig


def figure_latency(data: ReportData, workload: str, metrics: list[str]) -> Figure | None:
    """Latency percentiles (p50, p99, ...) per environment, one panel per latency family."""
    s = data.summary[(data.summary["workload"] == workload) & data.summary["metric"].isin(metrics)]
    if s.empty:
        return None
    families: dict[str, list[tuple[float, str]]] = {}
    for m in metrics:
        prefix, pct = percentile_of(m)
        families.setdefault(prefix, []).append((pct, m))
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
        ax.set_ylabel(s[s["metric"] == members[0][1]]["unit"].iloc[0])
        ax.set_title(f"{prefix} percentiles (lower is better)", fontsize=10)
        _maybe_log(ax, values)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(f"{workload}: latency percentiles, mean over rounds, whiskers 95% CI", fontsize=11)
    return fig


@dataclass(frozen=True)
class RenderedFigure:
    name: str      # file name in figures_dir
    title: str
    png: bytes


def workload_figures(data: ReportData, workload: str) -> list[RenderedFigure]:
    """The figures of one workload: lines for metrics swept over a numeric point (connections=10),
    bars for the others (a panel per metric and point), latency percentiles (``*lat*_pNN``) as lines."""
    s = data.summary[data.summary["workload"] == workload]
    if s.empty:
        return []
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
            var = POINT.match(next(p for p in s["point"] if p))["name"]
            out.append(RenderedFigure(f"{workload}.png", f"{workload} against {var}", png_bytes(fig)))
    if panels:
        fig = figure_bars(data, workload, panels)
        if fig is not None:
            name = f"{workload}-bars.png" if swept else f"{workload}.png"
            out.append(RenderedFigure(name, f"{workload}", png_bytes(fig)))
    if lat:
        fig = figure_latency(data, workload, lat)
        if fig is not None:
            out.append(RenderedFigure(f"{workload}-latency.png", f"{workload} latency percentiles", png_bytes(fig)))
    return out


def _overview_rows(data: ReportData) -> pd.DataFrame:
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


def figure_overview(data: ReportData) -> Figure | None:
    """A forest plot: every primary overhead as a point with its 95 % interval, one line per
    workload x metric x point x environment; the A/A noise floor as a grey band around 0 and the
    precision target as brackets around the point (where they are)."""
    rows = _overview_rows(data)
    if rows.empty:
        return None
    colors = env_colors(data)
    n = len(rows)
    fig = Figure(figsize=(9.5, max(2.5, 0.22 * n + 1.2)), layout="constrained")
    ax = fig.subplots()
    ys = np.arange(n)[::-1]
    labels = []
    for y, r in zip(ys, rows.itertuples()):
        labels.append(f"{r.workload} {r.metric}{' ' + r.point if r.point else ''} · {r.env}")
        if finite(r.noise_floor_pct):
            ax.fill_betweenx([y - 0.45, y + 0.45], -r.noise_floor_pct, r.noise_floor_pct, color="#dddddd", lw=0)
        if not finite(r.overhead_pct):
            continue
        color = colors.get(r.env, "#333333")
        if finite(r.overhead_ci_low):
            ax.plot([r.overhead_ci_low, r.overhead_ci_high], [y, y], color=color, lw=2)
            ax.plot([r.overhead_pct], [y], "o", color=color, ms=5)
        else:
            ax.plot([r.overhead_pct], [y], "o", mfc="white", mec=color, ms=5)
        if finite(r.target_pct):
            t = r.target_pct
            ax.plot([r.overhead_pct - t, r.overhead_pct + t], [y, y], ls="none", marker="|", color="#555555", ms=9)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(ys, labels, fontsize=7)
    ax.set_ylim(-0.8, n - 0.2)
    ax.set_xlabel(f"overhead against {data.baseline}, % (positive = slower)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("Overheads with 95% intervals over rounds; | |: precision target; grey: A/A noise floor; "
                 "open circle: no interval yet", fontsize=8)
    return fig


def smoke_note(data: ReportData) -> str:
    """Say plainly when the run did not reach its precision targets."""
    p = data.precision
    if p.empty:
        return ""
    missed = p[~p["met"].astype(bool)]
    if missed.empty:
        return ("<p class='lead'>Every workload reached its precision target: each overhead of a primary metric "
                "has a 95% interval within its target half-width.</p>")
    names = ", ".join(missed["workload"])
    return (f"<p class='warn'><b>Precision targets not met</b> for {len(missed)} of {len(p)} workloads "
            f"({esc(names)}): a cap stopped them first (see Precision). Read their overheads with the interval "
            f"they have; on this run, an effect smaller than its interval's half-width is not resolved. "
            f"{'This is a smoke run (profile quick): use it to check the set-up, not to quote numbers.' if data.run.get('profile') == 'quick' else ''}"
            f"</p>")


def section_overview(data: ReportData, overview: "RenderedFigure | None") -> str:
    if overview is None:
        return ("<section id='overview'><h2>At a glance</h2><p class='note'>No overhead to show yet.</p>"
                "</section>")
    b64 = base64.b64encode(overview.png).decode()
    return (f"<section id='overview'><h2>At a glance</h2><figure><img class='fig' alt='{esc(overview.title)}' "
            f"src='data:image/png;base64,{b64}'><figcaption class='note'>Every overhead of a primary metric "
            f"(emulated environments left out): the point is the geometric mean of the per-round ratios to "
            f"{esc(data.baseline)}, the line its 95% t-interval over rounds, the brackets the precision target "
            f"(± the target half-width around the point), the grey band ± the A/A noise floor. An interval "
            f"inside the grey band is not told apart from noise.</figcaption></figure></section>")


def section_precision(data: ReportData) -> str:
    p = data.precision
    if p.empty:
        return "<section id='precision'><h2>Precision</h2><p class='note'>No round decisions recorded.</p></section>"
    rows = []
    for r in p.itertuples():
        status = ("<span class='verdict-agrees'>met</span>" if r.met else
                  f"<span class='verdict-differs'>not met</span>: stopped by {esc(r.stop)}")
        worst = f"{r.worst_env} {r.worst_metric}{' ' + r.worst_point if r.worst_point else ''}"
        rows.append([esc(r.workload), f'<td class="num">±{esc(fmt_pct(r.target_pct))}%</td>',
                     f'<td class="num">±{esc(fmt_pct(r.halfwidth_pct))}%</td>', esc(worst), status,
                     f'<td class="num">{r.rounds} ({r.usable} counted, {r.flagged} flagged)</td>',
                     f'<td class="num">{esc(fmt_pct(r.sd_log * 100 if finite(r.sd_log) else None))}%</td>',
                     f'<td class="num">{r.ideal_rounds}</td>',
                     f'<td class="num">{esc(fmt(r.seconds / 60 if finite(r.seconds) else None))} min</td>',
                     esc(r.flagged_why)])
    return ("<section id='precision'><h2>Precision</h2><p class='note'>Per workload: the precision target (95% "
            "CI half-width of every overhead of its primary metrics), the widest half-width reached and where, "
            "whether the target was met or which cap stopped the rounds, the rounds measured, the paired SD "
            "of the per-round log ratios of that widest comparison, and the rounds (1.96·SD/h)² says that SD "
            "needs. Flagged rounds (interference sentinel) are excluded and replaced.</p>"
            + _table(["workload", "target", "reached", "widest", "status", "rounds", "pair SD", "rounds needed",
                      "measuring time", "flagged rounds"], rows) + "</section>")


# -- HTML parts ------------------------------------------------------------------------------------
CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0 auto;max-width:1180px;
padding:0 24px 48px;color:#1d1d1d;line-height:1.45;font-size:15px}
h1{font-size:26px;margin:24px 0 4px} h2{font-size:21px;border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:40px}
h3{font-size:17px;margin:22px 0 6px} p.lead{color:#555;margin-top:0}
div.scroll{overflow-x:auto;margin:8px 0 16px} table{border-collapse:collapse;font-size:13px}
table.summary{font-size:12px} th,td{border:1px solid #d8d8d8;padding:3px 7px;vertical-align:top}
th{background:#f2f2f2;text-align:left} tbody tr:nth-child(even){background:#fafafa}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.slower{background:#fde2e0} td.faster{background:#dff3e3} td.ns{color:#777} td.noise{color:#777;font-style:italic}
td.emu,span.emu{background:#eee;color:#555;font-weight:600}
span.badge{display:inline-block;font-size:11px;padding:0 5px;border-radius:3px;border:1px solid #aaa;margin-left:3px}
span.ci{color:#666;font-size:11px;display:block}
.verdict-agrees{color:#1b7a32;font-weight:600} .verdict-differs{color:#b3261e;font-weight:600} .verdict-nc{color:#666}
pre{background:#f6f6f6;border:1px solid #ddd;padding:8px;overflow-x:auto;font-size:13px}
img.fig{max-width:100%;height:auto;border:1px solid #eee} nav ul{columns:3;font-size:14px}
.note{color:#555;font-size:13px} .warn{background:#fff4d6;border-left:4px solid #e0a800;padding:6px 10px}
"""


def _table(head: list[str], rows: list[list[str]], cls: str = "") -> str:
    """Cells are HTML already (callers escape); head cells are escaped here."""
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<div class="scroll"><table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>'


def _effect_cell(data: ReportData, row) -> str:
    """'12.3% slower' with its CI, coloured by significance; 'emulated' for TCG environments."""
    if row is None:
        return '<td class="ns" title="no result">–</td>'
    if data.is_emulated(row.env):
        return (f'<td class="emu" title="{esc(row.effect)}; ratio {fmt_ratio(row.ratio)}">{EMULATED}'
                f'<span class="ci">TCG, not KVM</span></td>')
    if not finite(row.overhead_pct):
        return f'<td class="ns" title="{esc(row.ci_note)}">undefined</td>'
    ci = ci_words(row.overhead_ci_low, row.overhead_ci_high)
    if row.within_noise_floor:
        cls, tag = "noise", " ≈ noise"
    elif not row.significant:
        cls, tag = "ns", " (n.s.)"
    else:
        cls, tag = ("slower" if row.overhead_pct > 0 else "faster"), ""
    title = (f"ratio {fmt_ratio(row.ratio)}; {row.effect}" + (f"; {row.reason}" if row.reason else "")
             + (f"; A/A noise floor {fmt_pct(row.noise_floor_pct)}%" if finite(row.noise_floor_pct) else ""))
    if not finite(row.ratio_ci_low):
        cls, ci = "ns", f"no interval: {row.n} rounds"
    miss = " ✗" if finite(row.target_pct) and finite(row.ratio_ci_low) and not row.target_met else ""
    title += f"; ±{fmt_pct(row.halfwidth_pct)}% reached, target ±{fmt_pct(row.target_pct)}%, {row.n} rounds"
    return (f'<td class="num {cls}" title="{esc(title)}">{esc(short_effect(row.overhead_pct))}{esc(tag)}'
            f'<span class="ci">{esc(ci)}{esc(miss)}</span></td>')


def section_summary(data: ReportData) -> str:
    s, o = data.summary, data.overhead
    envs = [e for e in data.envs() if e in set(s["env"])]
    others = [e for e in envs if e != data.baseline]
    eff = {(r.env, r.workload, r.metric, r.point): r for r in o.itertuples()}
    keys = sorted({(r.workload, r.metric, r.point) for r in s.itertuples()},
                  key=lambda k: (data.workload_names().index(k[0]) if k[0] in data.workload_names() else 99,
                                 k[0], k[1], point_key(k[2])))
    base = {(r.workload, r.metric, r.point): r for r in s[s["env"] == data.baseline].itertuples()}
    rows = []
    for wl, metric, point in keys:
        b = base.get((wl, metric, point))
        if b is None:
            bcell = '<td class="ns">no baseline</td>'
        else:
            ci = f"CI {fmt(b.ci_low)}–{fmt(b.ci_high)}" if finite(b.ci_low) else "no CI"
            bcell = f'<td class="num">{esc(fmt(b.mean))} {esc(b.unit)}<span class="ci">{esc(ci)}</span></td>'
        any_row = s[(s["workload"] == wl) & (s["metric"] == metric)].iloc[0]
        arrow = "↑" if bool(any_row["higher_is_better"]) else "↓"
        rows.append([f'<a href="#wl-{esc(wl)}">{esc(wl)}</a>', f"{esc(metric)} {arrow}", esc(point), bcell]
                    + [_effect_cell(data, eff.get((e, wl, metric, point))) for e in others])
    head = ["workload", "metric", "point", f"{data.baseline} (mean of cells)"] + others
    legend = (f"<p class='note'>Each environment's column: how much slower or faster than {esc(data.baseline)} "
              f"(the geometric mean of the per-round ratios to {esc(data.baseline)}, signed by the metric's "
              f"direction: ↑ higher is better, ↓ lower is better; a latency twice native's is 100% slower), with "
              f"the 95% t-interval over rounds of that percentage (none below "
              f"{esc(data.stats_meta.get('min_rounds_ci', 5))} rounds). Red: significantly slower, green: "
              f"significantly faster (Benjamini-Hochberg adjusted, false discovery rate 5%), grey (n.s.): not "
              f"significant, italic (≈ noise): no larger than the A/A noise floor. ✗ after the interval: the "
              f"half-width did not reach the precision target. <b>emulated</b>: the environment's CPU is "
              f"emulated (QEMU TCG), its numbers are not KVM figures and are not shown as an overhead (hover "
              f"for the value). Hover any cell for the ratio and details.</p>")
    hdr = "".join(f"<th>{esc(h)}</th>" for h in head[:4]) + "".join(f"<th>{env_html(data, e)}</th>" for e in others)
    body = "".join("<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in r) + "</tr>"
                   for r in rows)
    if not rows:
        return "<section id='summary'><h2>Summary</h2><p class='warn'>No results at all.</p></section>"
    return (f"<section id='summary'><h2>Summary</h2>{legend}<div class='scroll'><table class='summary'><thead>"
            f"<tr>{hdr}</tr></thead><tbody>{body}</tbody></table></div>{_baseline_gaps(data)}</section>")


def _baseline_gaps(data: ReportData) -> str:
    s = data.summary
    have = set(s[s["env"] == data.baseline]["workload"])
    gaps = [w for w in data.workload_names() if w in set(s["workload"]) and w not in have]
    if not gaps:
        return ""
    why = ("the baseline environment is unavailable: " + data.manifests[data.baseline].get("reason", "")
           if data.baseline in data.manifests and not data.manifests[data.baseline].get("available", True)
           else "its baseline cells are missing (failed or not run)")
    return (f"<p class='warn'>No {esc(data.baseline)} results for {esc(', '.join(gaps))}: no overhead is computed "
            f"for {'it' if len(gaps) == 1 else 'them'}, because {esc(why)}.</p>")


def _settings_text(settings: dict[str, Any]) -> str:
    parts = []
    for k, v in sorted((settings or {}).items()):
        if k == "env":
            continue
        parts.append(f"{k}={json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v}")
    return ", ".join(parts)


def _counterparts(data: ReportData, env: str) -> str:
    m = data.manifests.get(env)
    if m is None:
        return ""
    if data.is_emulated(env):
        return "none (emulated CPU)"
    facts = paperlib.env_facts(m)
    labels = [c.label for k, c in data.paper.configurations.items() if paperlib.matches(c.match, facts)]
    return ", ".join(labels) or "none"


def section_environments(data: ReportData) -> str:
    rows = []
    for env in data.envs():
        m = data.manifests.get(env, {})
        labels = m.get("labels") or {}
        avail = m.get("available", env in set(data.summary["env"]))
        status = "available" if avail else f"<b>unavailable</b>: {esc(m.get('reason', ''))}"
        if avail and env not in set(data.summary["env"]):
            status = "available, but <b>no results</b> (all its cells failed or were not run)"
        rows.append([env_html(data, env), esc(m.get("driver", data.driver(env))), status,
                     esc(cpu_words(labels)),
                     esc(_settings_text(m.get("settings", {}))), esc(_counterparts(data, env))])
    return ("<section id='environments'><h2>Environments</h2>"
            + _table(["environment", "driver", "status", "CPU", "settings", "stands for (paper)"], rows)
            + "<p class='note'>“stands for”: the paper's configurations whose settings this environment matches "
              "(report/paper_results.yaml).</p></section>")


def missing_cells(data: ReportData) -> list[tuple[str, str, int]]:
    """Cells of the rounds each workload measured, in available environments, that have no results
    (flagged rounds are listed in the precision section, not here)."""
    measured = {r.workload: int(r.rounds) for r in data.precision.itertuples()}
    flagged = {(r.workload, int(x.split()[1].rstrip(":"))) for r in data.precision.itertuples()
               for x in str(r.flagged_why).split("; ") if x.startswith("round ")}
    envs = [e for e in data.run.get("environments", data.manifests)
            if data.manifests.get(e, {}).get("available", True)]
    wls = data.run.get("workloads", [w for w in data.workloads])
    have = set()
    for r in data.summary.itertuples():
        for rnd in str(r.rounds).split(","):
            if rnd:
                have.add((r.env, r.workload, int(rnd)))
    return [(e, w, rnd) for e in envs for w in wls for rnd in range(1, measured.get(w, 0) + 1)
            if (e, w, rnd) not in have and (w, rnd) not in flagged]


def section_missing(data: ReportData) -> str:
    missing = missing_cells(data)
    if not missing:
        return "<section id='missing'><h2>Missing cells</h2><p>None: every planned cell has results.</p></section>"
    rows = [[env_html(data, e), esc(w), str(r),
             f"<code>results/logs/run_cell/{esc(e)}/{esc(w)}/round-{r}.log</code>"] for e, w, r in missing]
    return ("<section id='missing'><h2>Missing cells</h2><p class='warn'>These cells of available environments "
            "have no results (failed, or not run); the statistics use the cells that exist.</p>"
            + _table(["environment", "workload", "round", "log"], rows) + "</section>")


def _numbers_table(data: ReportData, workload: str) -> str:
    s = data.summary[data.summary["workload"] == workload]
    eff = _effects(data, workload)
    order = {e: i for i, e in enumerate(data.envs())}
    rows = []
    for r in sorted(s.itertuples(), key=lambda r: (r.metric, point_key(r.point), order.get(r.env, 99))):
        e = eff.get((r.env, r.metric, r.point))
        ci = f"{fmt(r.ci_low)} – {fmt(r.ci_high)}" if finite(r.ci_low) else "–"
        note = "; ".join(filter(None, [r.ci_note, f"{r.n_outliers} outlier iteration(s) (kept)"
                                       if r.n_outliers else ""]))
        rows.append([esc(r.metric), esc(r.point), env_html(data, r.env), esc(r.unit),
                     f'<td class="num">{r.n_rounds} ({r.n} iterations, {r.n_warmup} warm-up)</td>',
                     f'<td class="num">{esc(fmt(r.mean))}</td>', f'<td class="num">{esc(ci)}</td>',
                     f'<td class="num">{esc(fmt(r.median))}</td>', f'<td class="num">{esc(fmt(r.stdev))}</td>',
                     f'<td class="num">{esc(fmt_pct(r.cv * 100 if finite(r.cv) else None))}</td>',
                     _effect_cell(data, e) if r.env != data.baseline else '<td class="ns">baseline</td>',
                     esc(note)])
    return _table(["metric", "point", "environment", "unit", "rounds", "mean", "95% CI", "median", "stdev", "cv %",
                   f"vs {data.baseline}", "notes"], rows)


def _paper_table(data: ReportData, workload: str) -> str:
    """Rows with a paper figure (agrees / differs / inconclusive) in full; the rest folded by environment and reason."""
    c = data.comparison[data.comparison["workload"] == workload]
    if c.empty:
        return "<p class='note'>No comparison with the paper: no overhead rows (no baseline results).</p>"
    order = {e: i for i, e in enumerate(data.envs())}
    judged = c[c["verdict"].isin(paperlib.JUDGED)]
    rows = []
    for r in sorted(judged.itertuples(), key=lambda r: (r.metric, point_key(r.point), order.get(r.env, 99))):
        cls = {paperlib.AGREES: "verdict-agrees", paperlib.DIFFERS: "verdict-differs"}.get(r.verdict, "verdict-nc")
        ours = fmt_ratio(r.ratio) + (f" ({fmt_ratio(r.ratio_ci_low)}–{fmt_ratio(r.ratio_ci_high)})"
                                     if finite(r.ratio_ci_low) else "")
        rows.append([esc(r.metric), esc(r.point), env_html(data, r.env), f'<td class="num">{esc(ours)}</td>',
                     esc(r.paper_label), f'<td class="num">{esc(fmt_ratio(r.paper_ratio))}</td>',
                     f'<span class="{cls}">{esc(r.verdict)}</span>',
                     f"{esc(r.source)} <b>[{esc(r.confidence)}]</b>", esc(r.note)])
    out = ""
    if rows:
        out += _table(["metric", "point", "environment", "our ratio (95% CI)", "paper config", "paper ratio",
                       "verdict", "source [confidence]", "note"], rows)
    else:
        out += "<p class='note'>No result of this workload has a counterpart in the paper.</p>"
    rest = c[~c.index.isin(judged.index)]
    if len(rest):
        folded: dict[tuple[str, str], list[str]] = {}
        for r in rest.itertuples():
            what = r.metric + (f"@{r.point}" if r.point else "")
            folded.setdefault((r.env, r.reason), []).append(what)
        def by_metric_point(w: str) -> tuple:
            metric, _, point = w.partition("@")
            return metric, point_key(point)
        frows = [[env_html(data, env), esc(reason), esc(", ".join(sorted(set(what), key=by_metric_point)))]
                 for (env, reason), what in sorted(folded.items(),
                                                   key=lambda kv: (order.get(kv[0][0], 99), kv[0][1]))]
        out += "<p class='note'>Not compared (verdict: not comparable):</p>" + _table(
            ["environment", "why", "metrics"], frows)
    return out


def section_workload(data: ReportData, workload: str, figures: list[RenderedFigure]) -> str:
    meta = data.workloads.get(workload, {})
    parts = [f"<section class='workload' id='wl-{esc(workload)}'><h2>{esc(workload)}"
             f" <span class='badge'>{esc(meta.get('kind', ''))}</span></h2>"]
    if meta.get("description"):
        parts.append(f"<p class='lead'>Measured command: <code>{esc(meta['description'])}</code></p>")
    metrics = meta.get("metrics") or {}
    if metrics:
        described = []
        for k, v in sorted(metrics.items()):
            better = "higher" if v.get("higher_is_better") else "lower"
            described.append(f"<b>{esc(k)}</b> [{esc(v.get('unit', ''))}, {better} is better] "
                             f"{esc(v.get('description', ''))}")
        parts.append("<p class='note'>Metrics: " + "; ".join(described) + "</p>")
    s = data.summary[data.summary["workload"] == workload]
    if s.empty:
        parts.append("<p class='warn'>No results for this workload (see Environments and Missing cells).</p>")
    for f in figures:
        b64 = base64.b64encode(f.png).decode()
        parts.append(f"<figure><img class='fig' alt='{esc(f.title)}' src='data:image/png;base64,{b64}'>"
                     f"<figcaption class='note'>{esc(f.title)}. Bars/lines: mean over rounds of each cell's value "
                     f"(the median of its measured iterations); whiskers: 95% t-interval of that mean; ◇: the paper's ratio to native "
                     f"applied to our native median (only where comparable); hatched/dashed and labelled "
                     f"EMULATED: TCG, not a KVM figure.</figcaption></figure>")
    if not s.empty:
        parts.append("<h3>Numbers</h3>" + _numbers_table(data, workload))
        parts.append("<h3>Against the paper</h3>" + _paper_table(data, workload))
    if meta.get("rerun"):
        parts.append(f"<h3>Rerun</h3><pre><code>{esc(meta['rerun'])}</code></pre>")
    parts.append("</section>")
    return "".join(parts)


def section_calibration(data: ReportData) -> str:
    c = data.calibration
    pairs = data.stats_meta.get("aa_pairs", [])
    intro = ("<p class='note'>Environments with identical driver, settings and labels (an A/A pair, by default "
             "native and native_aa) are measured in every round like the others and should measure the same; "
             "what they differ by is noise. The noise floor of a metric is the 95th percentile of the absolute "
             "per-round A/A differences: an overhead smaller than it is not told apart from noise (italic in "
             "the summary).</p>")
    if not len(c):
        msg = ("No A/A pair among the environments: no noise floor measured (add e.g. a second native "
               "environment with the same settings)." if not pairs else "A/A pairs exist but share no results.")
        return f"<section id='calibration'><h2>A/A calibration (noise floor)</h2>{intro}<p>{esc(msg)}</p></section>"
    rows = []
    for r in c.sort_values(["workload", "metric", "point", "env_a", "env_b"]).itertuples():
        ci = f"{fmt_ratio(r.ratio_ci_low)}–{fmt_ratio(r.ratio_ci_high)}" if finite(r.ratio_ci_low) else "no CI"
        rows.append([esc(r.workload), esc(r.metric), esc(r.point),
                     f"{env_html(data, r.env_b)} vs {env_html(data, r.env_a)}", f'<td class="num">{r.n}</td>',
                     f'<td class="num">{esc(fmt_ratio(r.ratio))} ({esc(ci)})</td>',
                     f'<td class="num">±{esc(fmt_pct(r.halfwidth_pct))}%</td>',
                     f'<td class="num">{esc(fmt_pct(r.noise_floor_pct))}%</td>',
                     "yes" if r.significant else "no"])
    judged = c[c["ratio_ci_low"].map(finite)]
    k, n = int(judged["significant"].sum()), len(judged)
    conf = float(data.stats_meta.get("confidence", 0.95))
    allowed = (1 - conf) * n
    verdict = ("within what chance allows" if k <= max(1.0, allowed + 2 * math.sqrt(allowed * conf))
               else "MORE than chance allows: the intervals are too narrow for this host, treat every "
                    "'significant' with caution")
    count = (f"<p><b>{k} of {n}</b> A/A comparisons with an interval came out significant (their interval "
             f"excludes 1); at {conf:.0%} confidence about {allowed:.1f} are expected by chance: {esc(verdict)}.</p>"
             if n else "<p class='note'>No A/A comparison has an interval yet (too few rounds).</p>")
    return ("<section id='calibration'><h2>A/A calibration (noise floor)</h2>" + intro + count
            + _table(["workload", "metric", "point", "pair", "rounds", "ratio (95% CI)", "half-width",
                      "noise floor (P95 |A/A|)", "CI excludes 1"], rows)
            + "</section>")


def section_methods(data: ReportData) -> str:
    parts = ["<section id='methods'><h2>Methods</h2>"]
    hosts = {}
    for env, w in data.warmups.items():
        h = w.get("host") or {}
        hosts.setdefault(h.get("fingerprint", "?"), (h, []))[1].append(env)
    parts.append("<h3>Host</h3>")
    if len(hosts) > 1:
        parts.append("<p class='warn'>The warm-ups ran on more than one host (different fingerprints): results "
                     "from different hosts are not comparable.</p>")
    for fp, (h, envs) in sorted(hosts.items()):
        stack = "; ".join(f"{k} {v}" for k, v in sorted((h.get("stack") or {}).items()) if v)
        parts.append(_table(["CPU model", "cores", "memory", "kernel", "cgroup layout", "virtualization",
                             "QEMU / libvirt / LXC", "mitigations (digest)", "governor", "hostname", "fingerprint",
                             "environments"],
                            [[esc(h.get("cpu_model")), esc(h.get("cores")), f"{esc(h.get('memory_mib'))} MiB",
                              esc(h.get("kernel")), esc(h.get("cgroup_layout")), esc(h.get("virtualization")),
                              esc(stack or "not recorded"), esc(h.get("mitigations", "")), esc(h.get("governor", "")),
                              esc(h.get("hostname")), f"<code>{esc(fp)}</code>", esc(", ".join(envs))]]))
    if not hosts:
        parts.append("<p class='warn'>No warm-up records: the host is not described.</p>")

    parts.append("<h3>Environments as seen from inside</h3>")
    rows = []
    for env in data.envs():
        w = data.warmups.get(env)
        if w is None:
            continue
        ins = w.get("inside") or {}
        tools = "; ".join(f"{k}: {v}" for k, v in sorted((w.get("tools") or {}).items()))
        lab = (data.manifests.get(env) or {}).get("labels") or w.get("labels") or {}
        rows.append([env_html(data, env), esc(cpu_words(lab)), esc(ins.get("nproc")),
                     f"{esc(ins.get('mem_mib'))} MiB", esc(ins.get("cgroup_mem", "")), esc(ins.get("kernel")),
                     esc(ins.get("cpu_model")), esc(_settings_text(w.get("settings") or {})), esc(tools),
                     esc(_when(w.get("started_at")))])
    parts.append(_table(["environment", "CPU provided by", "CPUs", "memory", "cgroup memory limit", "kernel",
                         "CPU model", "settings", "tool versions (warm-up)", "warm-up at"], rows))

    run = data.run
    s = data.summary
    first = s["first_started_at"].min() if len(s) else None
    last = s["last_ended_at"].max() if len(s) else None
    limits = run.get("limits") or {}
    parts.append("<h3>Run</h3>" + _table(["profile", "rounds (min / max / budget)", "measured iterations",
                                          "warm-up iterations", "limits", "first measurement", "last measurement"],
                                         [[esc(run.get("profile", "")), esc(_rounds_words(run)),
                                           esc(run.get("iterations", "")), esc(run.get("warmup_iterations", "")),
                                           esc(_settings_text(limits)), esc(_when(first)), esc(_when(last))]]))
    versions: dict[tuple[str, str], list[str]] = {}
    for r in s.drop_duplicates(["workload", "env"]).itertuples():
        versions.setdefault((r.workload, r.tool_version or "(not recorded)"), []).append(r.env)
    if versions:
        order = {e: i for i, e in enumerate(data.envs())}
        parts.append("<h3>Tool versions recorded with the cells</h3>" + _table(
            ["workload", "version", "environments"],
            [[esc(w), esc(v), ", ".join(env_html(data, e) for e in sorted(envs, key=lambda e: order.get(e, 99)))]
             for (w, v), envs in sorted(versions.items())]))
    wl_rows = [[esc(w), esc(m.get("kind", "")), f"<code>{esc(m.get('description', ''))}</code>",
                esc(_settings_text(m.get("params") or {}))] for w, m in sorted(data.workloads.items())]
    parts.append("<h3>Workloads</h3>" + _table(["workload", "kind", "measured command", "parameters"], wl_rows))

    m = data.stats_meta
    parts.append(
        "<h3>Statistics</h3><ul>"
        f"<li>The unit is the round: {esc(m.get('unit', ''))}. A round measures one workload on every "
        f"environment back to back, in an order drawn at random per round (seed {esc(run.get('seed', ''))}); "
        f"rounds flagged by the interference sentinel are excluded and replaced. Warm-up iterations are "
        f"recorded but never counted.</li>"
        f"<li>Absolute values per environment: mean of the cell values over rounds, "
        f"{esc(m.get('absolute_ci_method', ''))} (95%); median, standard deviation and coefficient of "
        f"variation are over the cell values too. Iterations outside Tukey's fences are counted, never "
        f"dropped ({esc(m.get('outlier_rule', ''))}).</li>"
        f"<li>Overhead against {esc(m.get('baseline', data.baseline))}: {esc(m.get('ci_method', ''))}; shown "
        f"as % of native, positive = slower (throughput lost for higher-is-better metrics, time added for "
        f"lower-is-better ones).</li>"
        f"<li>Significance: {esc(m.get('fdr', ''))}; an overhead is significant when its adjusted p-value is "
        f"below 5%. A/A rows are judged by their own interval.</li>"
        f"<li>Noise floor: {esc(m.get('noise_floor', ''))}.</li>"
        f"<li>Emulated (TCG) environments are kept and labelled, marked not comparable, and never shown as a "
        f"KVM overhead.</li>"
        f"<li>Comparison with the paper: {esc(paperlib.verdict_rule(data.paper.tolerance))} Paper figures carry "
        f"their source and a confidence tag: "
        + "; ".join(f"[{esc(k)}] {esc(v)}" for k, v in paperlib.TAGS.items()) + ".</li></ul>")
    parts.append("</section>")
    return "".join(parts)


def _rounds_words(run: dict[str, Any]) -> str:
    r = run.get("rounds") or {}
    return f"{r.get('min', '?')} / {r.get('max', '?')} / {r.get('budget_minutes', '?')} min per workload"


def _when(ts: Any) -> str:
    if ts is None or ts == "" or (not isinstance(ts, str) and pd.isna(ts)):
        return ""
    try:
        t = pd.Timestamp(ts)
    except ValueError:
        return str(ts)
    t = t.tz_convert("UTC") if t.tzinfo else t
    return t.strftime("%Y-%m-%d %H:%M UTC")


def render_html(data: ReportData, figures: dict[str, list[RenderedFigure]],
                overview: RenderedFigure | None = None) -> str:
    """The whole page."""
    wls = data.workload_names()
    nav = ("<nav><ul><li><a href='#overview'>At a glance</a></li><li><a href='#precision'>Precision</a></li>"
           "<li><a href='#summary'>Summary</a></li><li><a href='#environments'>Environments</a></li>"
           "<li><a href='#missing'>Missing cells</a></li>"
           + "".join(f"<li><a href='#wl-{esc(w)}'>{esc(w)}</a></li>" for w in wls)
           + "<li><a href='#calibration'>A/A calibration</a></li><li><a href='#methods'>Methods</a></li></ul></nav>")
    emu = [e for e in data.envs() if data.is_emulated(e)]
    emu_note = (f"<p class='warn'>Emulated environments ({esc(', '.join(emu))}): their CPU is emulated by QEMU TCG "
                f"(no hardware virtualization usable here). Their numbers say nothing about KVM's overhead and are "
                f"labelled <b>emulated</b> wherever they appear.</p>" if emu else "")
    run = data.run
    lead = (f"<p class='lead'>Bare metal ({esc(data.baseline)}) against LXC containers and KVM virtual machines, "
            f"after Felter et al., “An Updated Performance Comparison of Virtual Machines and Linux Containers” "
            f"(ISPASS 2015). Profile {esc(run.get('profile', '?'))}: rounds until each overhead's 95% interval "
            f"is within its precision target or a cap ({esc(_rounds_words(run))}), each cell "
            f"{esc(run.get('iterations', '?'))} measured iterations (+{esc(run.get('warmup_iterations', '?'))} "
            f"warm-up). Built only from stored results.</p>")
    body = [f"<h1>isobench: what isolation costs</h1>{lead}{emu_note}{smoke_note(data)}{nav}",
            section_overview(data, overview), section_precision(data), section_summary(data),
            section_environments(data), section_missing(data)]
    body += [section_workload(data, w, figures.get(w, [])) for w in wls]
    body += [section_calibration(data), section_methods(data)]
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>isobench report</title><style>{CSS}</style></head><body>{''.join(body)}</body></html>\n")


def build_report(aggregate_dir: Path, env_manifests: list[Path], warmups: list[Path], workloads_json: Path,
                 out_html: Path, figures_dir: Path, *, baseline: str | None = None,
                 paper_results: Path | str = paperlib.DEFAULT_PATH) -> list[Path]:
    """Write the HTML report and every figure as ``figures_dir/<name>.png``; return the figure paths.

    Figure names: ``<workload>.png`` (bars, or lines for sweeps), ``<workload>-latency.png`` (latency
    percentiles, for workloads with ``*lat*_pNN`` metrics), and ``<workload>-bars.png`` for the
    unswept metrics of a workload that also has swept ones. All match the pattern ``{name}.png``.
    """
    data = load_inputs(aggregate_dir, env_manifests, warmups, workloads_json, baseline=baseline,
                       paper_results=paper_results)
    figures = {w: workload_figures(data, w) for w in data.workload_names()}
    fig = figure_overview(data)
    overview = RenderedFigure(OVERVIEW, "Every overhead with its 95% interval", png_bytes(fig)) if fig else None
    written = []
    figures_dir = Path(figures_dir)
    figures_dir.mkdir(parents=True, exist_ok=True)
    for figs in [*figures.values(), [overview] if overview else []]:
        for f in figs:
            atomic_write_bytes(figures_dir / f.name, f.png)
            written.append(figures_dir / f.name)
    atomic_write_bytes(out_html, render_html(data, figures, overview).encode())
    return sorted(written)
