"""Raw iteration outputs -> one tidy Parquet file per cell (schema.SCHEMA).

Parsing is separate from measuring: a parser fix re-parses the kept raw files without running
anything again. Any output a parser cannot trust fails the cell loudly (ParseError); no row is
written for it and no partial Parquet file is left behind.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import ParseError
from .schema import SCHEMA
from .util import read_json
from .workloads import KINDS as WORKLOAD_KINDS
from .workloads import Sample


def cell_rows(raw_dir: Path) -> list[dict[str, Any]]:
    meta_path = raw_dir / "cell.json"
    if not meta_path.exists():
        raise ParseError(f"{raw_dir}: no cell.json (the cell did not finish); rerun it")
    meta = read_json(meta_path)
    cls = WORKLOAD_KINDS[meta["kind"]]
    rows = []
    canary = meta.get("canary_s") or {}
    for it in meta["iterations"]:
        host = it.get("host") or {}
        cpu_s = host.get("cpu_s") or {}
        sentinel = {
            "steal_pct": _num(host.get("steal_pct")), "busy_pct": _num(host.get("busy_pct")),
            "host_cpu_s": _num(sum(v for k, v in cpu_s.items() if k not in ("idle", "iowait")) if cpu_s else None),
            "cpu_user_s": _num(_sum(cpu_s, "user", "nice")), "cpu_system_s": _num(_sum(cpu_s, "system", "irq")),
            "cpu_softirq_s": _num(_sum(cpu_s, "softirq")), "cpu_steal_s": _num(_sum(cpu_s, "steal")),
            "env_cpu_s": _num(host.get("env_cpu_s")),
            "procs_running": _num(host.get("procs_running")), "load1": _num(host.get("load1")),
            "cpu_mhz": _num(host.get("cpu_mhz")), "canary_start_s": _num(canary.get("start")),
            "canary_end_s": _num(canary.get("end")), "cell_seconds": _num(meta.get("wall_seconds")),
        }
        points = point_readings(it.get("points") or [])
        raw = (raw_dir / it["file"]).read_text()
        try:
            samples = cls.parse(raw, meta["params"])
        except ParseError as e:
            raise ParseError(f"{raw_dir / it['file']}: {e}") from None
        for s in samples:
            if s.metric not in cls.METRICS:
                raise ParseError(f"{meta['kind']} parser yielded undeclared metric {s.metric!r}")
            m = cls.METRICS[s.metric]
            rows.append({
                "env": meta["env"], "driver": meta["driver"], "workload": meta["workload"],
                "kind": meta["kind"], "round": int(meta["round"]), "iteration": int(it["iteration"]),
                "warmup": bool(it["warmup"]), "point": s.point, "metric": s.metric, "value": float(s.value),
                "unit": m.unit, "higher_is_better": m.higher_is_better,
                "started_at": datetime.fromisoformat(it["started_at"]),
                "ended_at": datetime.fromisoformat(it["ended_at"]),
                "tool_version": meta["tool_version"], "host": host_name(meta["host"]),
                "host_fingerprint": meta["host"]["fingerprint"],
                "accel": meta["labels"]["accel"], "emulated": bool(meta["labels"]["emulated"]),
                "image_key": meta["image_key"], "settings": json.dumps(meta["settings"], sort_keys=True), **sentinel,
                **point_cost(points, s),
            })
    if not any(not r["warmup"] for r in rows):
        raise ParseError(f"{raw_dir}: no measured samples")
    return rows


NO_POINT = {"point_seconds": math.nan, "point_cpu_busy_s": math.nan, "point_subject": "", "point_env_cpu_s": math.nan}


def point_readings(points: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, float]]:
    """(subject, point) -> the CPU columns of one timed sweep point (Context.point readings)."""
    out = {}
    for p in points:
        cpu_s = p.get("cpu_s") or {}
        out[(p.get("subject", ""), p["point"])] = {
            "point_seconds": _num(p.get("seconds")),
            "point_cpu_busy_s": _num(_sum(cpu_s, "user", "nice", "system", "irq", "softirq")),
            "point_subject": str(p.get("subject", "")),
            "point_env_cpu_s": _num(p.get("env_cpu_s"))}
    return out


def point_cost(points: dict[tuple[str, str], dict[str, float]], s: Sample) -> dict[str, float]:
    """The timed point a sample belongs to: its point and, where the point was timed per subject,
    the subject its metric is named after (``read_only`` for ``read_only_tps``)."""
    for (subject, point), cols in points.items():
        if point == s.point and (not subject or s.metric.startswith(f"{subject}_")):
            return cols
    return NO_POINT


def host_name(host: dict[str, Any]) -> str:
    """The host a cell ran on: its name in the config on a cluster, else its short host name."""
    return str(host.get("name") or host.get("hostname", "?").split(".")[0])


def _sum(cpu_s: dict[str, float], *fields: str) -> float | None:
    """Seconds of some /proc/stat fields (None when the cell did not record them)."""
    return sum(cpu_s.get(f, 0.0) for f in fields) if cpu_s else None


def _num(x: Any) -> float:
    """A sentinel reading as float; NaN where the cell did not record it."""
    return float("nan") if x is None else float(x)


def write_table(rows: list[dict[str, Any]], out: Path) -> None:
    """Write rows as Parquet atomically: the file is complete or absent."""
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def collect(raw_dir: Path, out: Path) -> int:
    rows = cell_rows(raw_dir)
    write_table(rows, out)
    return len(rows)
