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


# -- decisions (the overhead table's ``decision`` columns; read, never computed here) ---------------
#: the words the aggregate stage decides with, in the order the report lists them
DECISIONS = ("same", "slower", "faster", "undecided", "no interval")
#: what an entry says when its table has no decision (an aggregate written before decisions existed)
NO_DECISION = "no decision recorded"


def decision_of(row: Any) -> str:
    """The stored decision word of an overhead row, "" when the table has none for it."""
    d = getattr(row, "decision", None)
    return d if isinstance(d, str) else ""


def decision_class(decision: str) -> str:
    """The CSS class of a decision (``dec-same`` ... ``dec-none`` for no interval, ``dec-unrecorded``)."""
    if decision == "no interval":
        return "dec-none"
    return f"dec-{decision}" if decision in DECISIONS else "dec-unrecorded"


def margin_words(row: Any) -> str:
    """'±5%', the row's equivalence margin, "" where the table has none."""
    m = getattr(row, "margin_pct", None)
    return f"±{float(m):g}%" if finite(m) else ""


def settle_words(decision: str, settle_rounds: Any) -> str:
    """What would settle an undecided comparison, from its stored ``settle_rounds`` ("" otherwise)."""
    if decision != "undecided":
        return ""
    if settle_rounds is None or (isinstance(settle_rounds, float) and math.isnan(settle_rounds)):
        return "no estimate of the rounds that would settle it"
    x = float(settle_rounds)
    if math.isinf(x):
        return "no number of rounds would settle it at this spread"
    n = max(1, math.ceil(x))
    return f"~{n} more round{'s' if n != 1 else ''} would settle it"


def decision_short(row: Any) -> str:
    """A comparison in a few words, the direction always said: '12.3% slower', 'same (±5%)',
    'undecided (0.5% slower)', 'no interval (3.0% faster)'; without a stored decision the effect and
    whether it is significant ('0.5% slower (n.s.)')."""
    d, effect = decision_of(row), short_effect(getattr(row, "overhead_pct", None))
    if d in ("slower", "faster"):
        return effect
    if d == "same":
        m = margin_words(row)
        return f"same{' (' + m + ')' if m else ''}"
    if d:
        return f"{d} ({effect})"
    sig = getattr(row, "significant", None)
    return effect + (" (n.s.)" if sig is not None and not sig and finite(getattr(row, "overhead_pct", None)) else "")


def ratio_words(ratio: Any, higher_is_better: bool) -> str:
    """'0.67x native (slower)': a ratio to the baseline with the direction it means for this metric."""
    if not finite(ratio):
        return "–"
    r = float(ratio)
    way = "same" if r == 1 else ("slower" if (r < 1) == bool(higher_is_better) else "faster")
    return f"{fmt_ratio(r)}x ({way})"


def cost_words(ratio: Any) -> str:
    """A CPU cost against the baseline: '1.4x (more CPU)', '0.9x (less CPU)'."""
    if not finite(ratio):
        return "–"
    r = float(ratio)
    return f"{fmt_ratio(r)}x ({'same CPU' if r == 1 else 'more CPU' if r > 1 else 'less CPU'})"
