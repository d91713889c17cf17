"""The report's inputs, each by the name the rule gives it (rules/report.smk), read into a ReportData.

Everything shown is read: the aggregate stage's tables (statistics, paper comparison, missing
results, environment status) and their stored parameters, the environment manifests, the warm-up
records and the workload descriptions (with the run record under ``_run``). Nothing here computes
a result; the only logic is the order things are shown in.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from ..aggregate import read_metadata
from ..drivers import KINDS
from ..paper import DEFAULT_TOLERANCE
from ..util import read_json

#: environments are listed by their driver kind's Driver.ORDER (native, lxc, oci, gvisor, kvm, ...)
DRIVER_RANK = {kind: cls.ORDER for kind, cls in KINDS.items()}
#: each kind's Driver.FAMILY, what figures colour environments by
DRIVER_FAMILY = {kind: cls.FAMILY for kind, cls in KINDS.items()}


@dataclass(frozen=True)
class Inputs:
    """One field per named input of rule build_report; ``envs`` and ``warmups`` are lists."""
    summary: Path
    overhead: Path
    calibration: Path
    precision: Path
    paper: Path
    missing: Path
    aa_check: Path
    environments: Path
    cpu_cost: Path
    envs: list[Path]
    warmups: list[Path]
    workloads: Path

    @classmethod
    def of(cls, named: dict[str, Any]) -> Inputs:
        """From the rule's named inputs; an unknown or missing name is an error (a list may be absent:
        no files)."""
        lists = ("envs", "warmups")
        want = {f.name for f in fields(cls)}
        if set(named) - want or want - set(named) - set(lists):
            raise ValueError(f"report inputs: expected {sorted(want)}, got {sorted(named)}")
        return cls(**{k: [Path(p) for p in named.get(k, [])] if k in lists else Path(named[k]) for k in want})


@dataclass
class ReportData:
    baseline: str
    summary: pd.DataFrame
    overhead: pd.DataFrame
    calibration: pd.DataFrame
    precision: pd.DataFrame
    comparison: pd.DataFrame
    missing: pd.DataFrame
    aa_check: pd.DataFrame
    environments: pd.DataFrame
    stats_meta: dict[str, Any]
    paper_tolerance: float
    manifests: dict[str, dict[str, Any]]
    warmups: dict[str, dict[str, Any]]
    workloads: dict[str, dict[str, Any]]
    run: dict[str, Any]
    cpu_cost: pd.DataFrame = field(default_factory=pd.DataFrame)

    @cached_property
    def _env_rows(self) -> dict[str, Any]:
        return {r.env: r for r in self.environments.itertuples()}

    def is_emulated(self, env: str) -> bool:
        r = self._env_rows.get(env)
        return bool(r is not None and r.emulated)

    def driver(self, env: str) -> str:
        r = self._env_rows.get(env)
        return str(r.driver) if r is not None else ""

    def env_row(self, env: str) -> Any:
        return self._env_rows.get(env)

    @cached_property
    def _envs(self) -> tuple[str, ...]:
        names = set(self._env_rows) | set(self.summary["env"])
        return tuple(sorted(names, key=lambda e: (e != self.baseline, DRIVER_RANK.get(self.driver(e), 999),
                                                  self.is_emulated(e), e)))

    def envs(self) -> list[str]:
        """Every environment, the baseline first, then by driver (Driver.ORDER: native, lxc, oci,
        gvisor, kvm) and name."""
        return list(self._envs)

    @cached_property
    def _workload_names(self) -> tuple[str, ...]:
        listed = [w for w in self.run.get("workloads", []) if w in self.workloads]
        rest = sorted((set(self.workloads) | set(self.summary["workload"])) - set(listed))
        return tuple(listed + rest)

    def workload_names(self) -> list[str]:
        """The run's workloads in its order, then any other described or measured one by name."""
        return list(self._workload_names)

    def workload_rank(self, workload: str) -> int:
        names = self._workload_names
        return names.index(workload) if workload in names else 99


def _read_table(path: Path) -> pd.DataFrame:
    df = pd.read_parquet(path)
    for col in df.columns:
        if pd.api.types.is_string_dtype(df[col]) and not pd.api.types.is_bool_dtype(df[col]):
            df[col] = df[col].astype(object)
    return df


def load_inputs(inputs: Inputs, *, baseline: str | None = None) -> ReportData:
    """Everything the report shows, read from the named files.

    ``baseline`` defaults to the one the aggregate step used (stored with its tables), so the two
    cannot disagree.
    """
    manifests = {m["env"]: m for m in (read_json(p) for p in sorted(inputs.envs, key=str))}
    warm = {w["env"]: w for w in (read_json(p) for p in sorted(inputs.warmups, key=str))}
    described = read_json(inputs.workloads)
    run = described.pop("_run", {}) or {}
    meta = read_metadata(inputs.summary)
    tolerance = read_metadata(inputs.paper).get("paper_tolerance", DEFAULT_TOLERANCE)
    return ReportData(baseline or meta.get("baseline") or "native", _read_table(inputs.summary),
                      _read_table(inputs.overhead), _read_table(inputs.calibration), _read_table(inputs.precision),
                      _read_table(inputs.paper), _read_table(inputs.missing), _read_table(inputs.aa_check),
                      _read_table(inputs.environments), meta, float(tolerance), dict(sorted(manifests.items())),
                      dict(sorted(warm.items())), described, run, _read_table(inputs.cpu_cost))
