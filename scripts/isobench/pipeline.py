"""What the Snakemake rules ask of the config: the matrix, availability, and per-rule params.

Built once when the workflow is parsed. Environments that cannot run on this host (KVM without
usable acceleration) are reported in one line each and left out of the matrix, so the rest runs.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
import sys
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from . import config as configmod
from .cell import cleanup_all
from .errors import BenchError
from .workloads import KINDS as WORKLOAD_KINDS

log = logging.getLogger("isobench")

#: Snakemake priority of the set-up jobs (provision, warmup): above every measurement, so all
#: environments are warm before the interleaved measurement order starts
SETUP_PRIORITY = 1_000_000


@dataclass
class Plan:
    config: configmod.Config
    _availability: dict[str, dict[str, Any]] = field(default_factory=dict)

    def availability(self, env: str) -> dict[str, Any]:
        if env not in self._availability:
            a = self.config.availability(env)
            self._availability[env] = {"available": a.available, "reason": a.reason,
                                       "labels": {"accel": "none", "emulated": False, **a.labels}}
        return self._availability[env]

    @property
    def environments(self) -> list[str]:
        return list(self.config.run_environments)

    @property
    def available_environments(self) -> list[str]:
        return [e for e in self.environments if self.availability(e)["available"]]

    @property
    def workloads(self) -> list[str]:
        return list(self.config.run_workloads)

    def cells(self) -> list[str]:
        return [f"results/cells/{e}/{w}/rep-{r}.parquet" for e in self.available_environments
                for w in self.workloads for r in range(1, self.config.repetitions + 1)]

    def cell_order(self) -> list[tuple[str, str, int]]:
        """The order cells are measured in: repetition by repetition, and within one repetition
        workload by workload across every environment, the environments rotated by one place per
        repetition. So the cells an overhead compares run minutes apart, not a whole matrix apart:
        a host whose speed drifts (CPU credits, thermal limits, neighbours) moves native and the
        others alike, and no environment always runs first after a different workload."""
        envs, order = self.available_environments, []
        for r in range(1, self.config.repetitions + 1):
            shift = (r - 1) % max(len(envs), 1)
            rotated = envs[shift:] + envs[:shift]
            order += [(e, w, r) for w in self.workloads for e in rotated]
        return order

    def cell_priority(self, env: str, workload: str, rep: int) -> int:
        """Snakemake priority of a cell's measurement: earlier in cell_order() = higher, all below
        SETUP_PRIORITY (the warmups run first) and above 0 (collecting waits for the measurements)."""
        return SETUP_PRIORITY - 1 - self._rank.get((env, workload, rep), len(self._rank))

    @cached_property
    def _rank(self) -> dict[tuple[str, str, int], int]:
        return {cell: i for i, cell in enumerate(self.cell_order())}

    def workload_params(self) -> list[dict[str, Any]]:
        return [self.config.workload_params(w) for w in self.workloads]

    def tool_checks(self) -> list[dict[str, Any]]:
        """One entry per workload kind in the matrix: the warmup checks tools by kind, so changing a
        workload's parameters does not re-run the warmup."""
        kinds = sorted({self.config.workloads[w]["kind"] for w in self.workloads})
        return [{"workload": k, "kind": k} for k in kinds]

    def run_record(self) -> dict[str, Any]:
        c = self.config
        return {"profile": c.profile, "repetitions": c.repetitions, "iterations": c.iterations,
                "warmup_iterations": c.warmup_iterations, "baseline": configmod.BASELINE,
                "environments": self.environments, "workloads": self.workloads,
                "limits": {"cpus": c.limits.cpus, "memory_mib": c.limits.memory_mib}}

    def parser_version(self, workload: str) -> str:
        cls = WORKLOAD_KINDS[self.config.workloads[workload]["kind"]]
        src = inspect.getsource(sys.modules[cls.__module__])
        return hashlib.sha256(src.encode()).hexdigest()[:12]


def plan_or_exit(raw: dict[str, Any]) -> Plan:
    """Validate the config; on error print one line and exit non-zero before any job runs."""
    try:
        plan = Plan(configmod.load(raw))
        for env in plan.environments:
            a = plan.availability(env)
            if not a["available"]:
                print(f"isobench: environment {env} unavailable, skipped: {a['reason']}", file=sys.stderr)
        return plan
    except BenchError as e:
        print(f"isobench: {e}", file=sys.stderr)
        sys.exit(1)


def release_stale_lock(workdir: str = ".") -> None:
    """Remove Snakemake's lock when the run that held it is dead (killed, power loss).

    Snakemake refuses to start while .snakemake/locks holds entries and asks for --unlock; after a
    killed run that is only friction, so we remove the lock ourselves, but only when no other
    process that mentions snakemake has this working directory (a live run keeps its lock).
    """
    locks = os.path.join(workdir, ".snakemake", "locks")
    if not os.path.isdir(locks) or not os.listdir(locks):
        return
    here = os.path.realpath(workdir)
    me = {os.getpid(), os.getppid()}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) in me:
            continue
        try:
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read()
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if b"snakemake" in cmdline and os.path.realpath(cwd) == here:
            return
    for name in os.listdir(locks):
        os.unlink(os.path.join(locks, name))
    print("isobench: removed the lock of a Snakemake run that was killed", file=sys.stderr)


def start(cfg: configmod.Config) -> None:
    """Before any job of a real run: check we may drive the host, then remove what a crashed
    earlier run left behind (by the project's name prefix)."""
    if os.geteuid() != 0:
        print("isobench: must run as root (it starts containers and guests, mounts overlays and edits "
              "iptables); run it with sudo or as root", file=sys.stderr)
        sys.exit(1)
    removed = cleanup_all(cfg.paths)
    for what in removed:
        print(f"isobench: removed leftover {what}", file=sys.stderr)


def finish(cfg: configmod.Config, success: bool, report: str) -> None:
    from . import libvirtd
    libvirtd.stop_started(cfg.paths.root)
    if success and os.path.exists(report):
        print(f"isobench: report: {os.path.abspath(report)}", file=sys.stderr)
