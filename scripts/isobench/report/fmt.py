"""Numbers, intervals, points, settings and times as the report writes them (plain text: the HTML
template escapes whatever these return)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

import pandas as pd

PERCENTILE = re.compile(r"^(?P<prefix>.*?)_?p(?P<pct>\d+(?:\.\d+)?)$")
POINT = re.compile(r"^(?P<name>[A-Za-z_][\w.-]*)=(?P<value>-?\d+(?:\.\d+)?)$")


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


def point_name(point: str) -> str:
    """The sweep variable of a point ("connections" of "connections=10")."""
    return POINT.match(point)["name"]


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


def cpu_words(labels: dict[str, Any]) -> str:
    """How the environment's CPU is provided, in words."""
    accel = labels.get("accel", "")
    if labels.get("emulated") or accel == "tcg":
        return "EMULATED (QEMU TCG)"
    return {"none": "host CPU", "kvm": "KVM (hardware)"}.get(accel, accel)


def settings_text(settings: dict[str, Any]) -> str:
    parts = []
    for k, v in sorted((settings or {}).items()):
        if k == "env":
            continue
        parts.append(f"{k}={json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v}")
    return ", ".join(parts)


def rounds_words(run: dict[str, Any]) -> str:
    r = run.get("rounds") or {}
    return f"{r.get('min', '?')} / {r.get('max', '?')} / {r.get('budget_minutes', '?')} min per workload"


def when(ts: Any) -> str:
    if ts is None or ts == "" or (not isinstance(ts, str) and pd.isna(ts)):
        return ""
    try:
        t = pd.Timestamp(ts)
    except ValueError:
        return str(ts)
    t = t.tz_convert("UTC") if t.tzinfo else t
    return t.strftime("%Y-%m-%d %H:%M UTC")
