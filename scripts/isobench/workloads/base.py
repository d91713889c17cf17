"""The workload interface: one module per workload kind, each a command builder, a parser and metrics.

A workload kind declares

* ``PARAMS``: JSON-schema properties of its parameters (types, defaults, descriptions), used by
  config validation and by the generated ``config/schema.json``;
* ``METRICS``: every metric it can yield, with unit and direction;
* ``TOOLS``: the commands it needs inside the environment (the warmup stage runs each);
* ``prepare``: datasets made once per cell, before the warm-up iterations, never measured;
* ``run_iteration``: one iteration; returns the raw tool output, kept unedited on disk;
* ``parse``: raw output -> samples; raises ParseError on truncated, garbled or failed output.

Adding a workload touches its module and the config, nothing else (kinds register themselves:
``isobench.workloads.KINDS``).
"""

from __future__ import annotations

import contextlib
import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..drivers.base import Instance


@dataclass(frozen=True)
class Metric:
    unit: str
    higher_is_better: bool
    description: str
    #: a headline metric: the workload gets rounds until every primary metric's overhead reaches its
    #: precision target (the others are reported with the precision they reached)
    primary: bool = False


def metric_family(subjects: dict[str, str], members: dict[str, Metric]) -> dict[str, Metric]:
    """One metric per subject and member, named ``{subject}_{member}``: the member's metric with the
    subject's label put in for ``{}`` in its description. Subject by subject, members in order."""
    return {f"{s}_{m}": dataclasses.replace(metric, description=metric.description.format(label))
            for s, label in subjects.items() for m, metric in members.items()}


@dataclass(frozen=True)
class Sample:
    metric: str
    value: float
    #: sweep point, e.g. "connections=10"; "" for workloads without a sweep
    point: str = ""


def _unmeasured_point(point: str, subject: str = "") -> AbstractContextManager[None]:
    return contextlib.nullcontext()


@dataclass
class Context:
    """What a workload gets to run one cell: the instance, a host-side client and host scratch space."""
    inst: Instance
    #: a host-side instance for clients (native chroot of the same image, host network);
    #: created on first use by the cell runner
    client: Callable[[], Instance]
    #: host directory for cached datasets (corpora), shared by all cells
    cache_dir: Path
    #: filled by prepare(): facts recorded with the cell (dataset checksums and the like)
    facts: dict[str, Any]
    #: ``with ctx.point("threads=8", subject="read_only"): ...`` around the run of one sweep point:
    #: the cell runner records the host's (and the environment's) CPU time over it, so the CPU cost
    #: is known per point, not only per iteration. ``point`` is the Sample.point the parser gives
    #: the results; ``subject`` narrows it to the metrics named ``{subject}_*`` ("" = all of them)
    point: Callable[..., AbstractContextManager[None]] = _unmeasured_point


def run_shell(inst: Instance, command: str, *, timeout: float) -> str:
    """Run one shell command inside ``inst``; the raw output is the command line (``$ command``)
    followed by everything it printed, stdout then stderr."""
    res = inst.sh(command, timeout=timeout)
    return f"$ {command}\n{res.stdout}{res.stderr}"


def parser_helper(fn: Callable) -> Callable:
    """Marks a helper that only parsing uses: editing it re-collects the kept raw output and never
    re-measures (isobench.codehash.measure_hash). ``parse`` itself needs no mark."""
    return fn


#: precision-target classes (config ``precision:``): what a workload mainly exercises
CATEGORIES = ("cpu", "memory", "storage", "network", "application")


class Workload(ABC):
    kind: ClassVar[str]
    #: one of CATEGORIES: selects the default precision target
    CATEGORY: ClassVar[str]
    PARAMS: ClassVar[dict[str, Any]] = {}
    METRICS: ClassVar[dict[str, Metric]] = {}
    TOOLS: ClassVar[tuple[tuple[str, ...], ...]] = ()
    #: the command whose output is the "tool version" recorded with every cell
    VERSION_ARGV: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str, params: dict[str, Any]):
        self.name = name
        self.params = params

    def to_param(self) -> dict[str, Any]:
        """The workload as one value a rule passes to its script (workloads.from_param reverses it)."""
        return {"workload": self.name, "kind": self.kind, **self.params}

    def prepare(self, ctx: Context) -> None:  # noqa: B027  (optional hook: most workloads need no datasets)
        """Make the datasets this workload reads; runs once per cell and is not measured."""

    @abstractmethod
    def run_iteration(self, ctx: Context) -> str:
        """Run one iteration; return the raw output that ``parse`` reads."""

    @classmethod
    @abstractmethod
    def parse(cls, raw: str, params: dict[str, Any]) -> list[Sample]:
        """Raw output of one iteration -> samples (ParseError when it cannot be trusted)."""

    def version(self, inst: Instance) -> str:
        if not self.VERSION_ARGV:
            return ""
        res = inst.exec(list(self.VERSION_ARGV), timeout=60)
        text = (res.stdout or res.stderr).strip().splitlines()
        return text[0].strip() if text else ""

    def describe(self) -> str:
        """A one-line human description of the measured command, for the report."""
        return self.kind
