"""Running things in environments: the warmup check of an environment, and one round of a workload.

A round measures one workload on each of its environments. Each environment's part of it is a
*cell* (:class:`CellRun`): its own fresh instance, datasets prepared once, warm-up iterations
(recorded, flagged), measured iterations, every iteration's raw output kept as a file, the instance
torn down on every path, and ``cell.json`` written last and atomically (a raw directory without it
is incomplete; Snakemake removes the round's directory when the job fails).

The round runs in one of two orders (``measure.order``):

* ``interleaved`` (default): every environment's instance is started and warmed up once, then the
  measured iterations run in blocks, one iteration per environment in an order drawn per block from
  the seed. A pair is then seconds apart, so a drifting host moves both of its halves alike.
  Servers stay alive and idle between their iterations; instances on the host's network get their
  own loopback address and NAT'ed ones their own published port (the drivers see to it), so they
  never collide. An environment whose instances would hold more host memory than is free (a guest),
  or an emulated one (slow: it would separate the others' pairs), runs its iterations as a block
  first, with the reason recorded.
* ``sequential``: the round's environments one after the other, each a whole cell (the order before
  interleaving; kept to compare the two).

Every iteration records what else the host was doing (:mod:`isobench.sentinel`); a fixed-work host
canary runs while the round's instances are alive but outside every measured iteration (before the
first measured iteration and after the last), the same way for every driver.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import PREFIX, drivers, hostinfo, sentinel
from .drivers import Driver, EnvSpec, Instance, StatePaths
from .errors import BenchError, InstanceError, Unavailable
from .image import check_rootfs
from .measure import Measure
from .order import block_order, round_order
from .util import atomic_write_text, write_json
from .workloads import Context, Workload

log = logging.getLogger("isobench")

#: host memory (MiB) left free beside the guests a round keeps alive at once
MEMORY_HEADROOM_MIB = 1024
#: why an emulated environment is measured as a block: its iterations take minutes, and in a block
#: they would put minutes between the two halves of every other pair (it never decides anything)
EMULATED_BLOCK = "emulated (TCG): its iterations are slow and would separate the others' pairs; measured as a block"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def instance_name(env: str, what: str, rnd: int | None = None, host: str | None = None) -> str:
    """The name of an instance (and of what the driver creates for it). On a cluster it carries the
    host, so that fake hosts sharing one machine (tests) never reuse each other's names."""
    return f"{PREFIX}-" + (f"{host}-" if host else "") + f"{env}-{what}" + (f"-{rnd}" if rnd is not None else "")


def _labels(driver: Driver) -> dict[str, Any]:
    avail = driver.availability()
    if not avail.available:
        raise Unavailable(f"environment {driver.env} is unavailable: {avail.reason}")
    return avail.labels


def provision(spec: EnvSpec, paths: StatePaths, image: dict[str, Any]) -> dict[str, Any]:
    """An environment's manifest: its settings, whether it can run here, and what its driver built
    for it. An unavailable environment the config asked for by name is an error, others are recorded
    as skipped."""
    driver = drivers.create(spec, paths, image)
    avail = driver.availability()
    if not avail.available and avail.required:
        raise Unavailable(f"environment {spec.env} is unavailable: {avail.reason}")
    artifacts = driver.provision() if avail.available else {}
    return {"env": spec.env, "driver": spec.kind, **avail.as_dict(), "settings": driver.settings(),
            "artifacts": artifacts}


def warmup(spec: EnvSpec, workloads: list[Workload], paths: StatePaths, image: dict[str, Any],
           out_json: Path, *, host: str | None = None) -> dict[str, Any]:
    """Start an instance, check every selected workload's tools, record host and inside fingerprints."""
    check_rootfs(image)
    driver = drivers.create(spec, paths, image)
    labels = _labels(driver)
    t0 = time.monotonic()
    started_at = now()
    tools: dict[str, str] = {}
    with driver.start(instance_name(driver.env, "warmup", host=host)) as inst:
        start_s = time.monotonic() - t0
        inside = inst.describe()
        for wl in workloads:
            for argv in wl.TOOLS:
                res = inst.exec(list(argv), timeout=60)
                if res.returncode != 0:
                    raise InstanceError(f"environment {driver.env}: tool for workload {wl.name} does not run "
                                        f"({' '.join(argv)}: exit {res.returncode}); is its package in "
                                        f"image.packages?")
            tools[wl.kind] = wl.version(inst)
    driver.check_resources(inside)
    record = {"env": driver.env, "driver": driver.kind, "labels": labels, "settings": driver.settings(),
              "host": hostinfo.fingerprint(), "inside": inside, "tools": tools, "started_at": started_at,
              "start_seconds": round(start_s, 3), "image_key": image.get("key", "")}
    write_json(out_json, record)
    log.info("warmup %s: ok (%s, start %.2f s, sees %s CPUs / %s MiB)", driver.env, labels["accel"],
             start_s, inside.get("nproc"), inside.get("mem_mib"))
    return record


class HostClient:
    """The host-side instance clients run in (load generators of server workloads), started on first
    use and shared by the cells of a round."""

    def __init__(self, paths: StatePaths, image: dict[str, Any], name: str):
        self._paths, self._image, self._name = paths, image, name
        self._inst: Instance | None = None

    def __call__(self) -> Instance:
        if self._inst is None:
            self._inst = drivers.host_client(self._paths, self._image).start(self._name)
        return self._inst

    def stop(self) -> None:
        if self._inst is not None:
            self._inst.stop()


@dataclass
class CellRun:
    """One environment's cell of a round, from its instance's start to ``cell.json``."""
    driver: Driver
    wl: Workload
    rnd: int
    out_dir: Path
    client: HostClient
    instance: str
    labels: dict[str, Any] = field(default_factory=dict)
    inst: Instance | None = None
    ctx: Context | None = None
    inside: dict[str, Any] = field(default_factory=dict)
    version: str = ""
    records: list[dict[str, Any]] = field(default_factory=list)
    #: wall seconds this cell's own steps took (start, preparation, its iterations, stop)
    busy_s: float = 0.0
    #: how the cell was run within its round (recorded in cell.json)
    placement: dict[str, Any] = field(default_factory=dict)
    _points: list[dict[str, Any]] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"cell {self.driver.env}/{self.wl.name}/round-{self.rnd}"

    @contextlib.contextmanager
    def _timed(self) -> Iterator[None]:
        t0 = time.monotonic()
        try:
            yield
        except Unavailable:
            raise                       # names the environment already: not a failure of this cell
        except BenchError as e:
            raise BenchError(f"{self.where}: {e}") from e
        finally:
            self.busy_s += time.monotonic() - t0

    def open(self) -> None:
        """Start the instance and prepare the workload's datasets (servers included)."""
        with self._timed():
            self.labels = _labels(self.driver)
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self.inst = self.driver.start(self.instance)
            self.inside = self.inst.describe()

            @contextlib.contextmanager
            def point(label: str, subject: str = "") -> Iterator[None]:
                with sentinel.Watch(self.inst.cpu_seconds) as w:
                    yield
                self._points.append({"point": label, "subject": subject, **w.reading.as_dict()})

            self.ctx = Context(inst=self.inst, client=self.client, cache_dir=self.driver.paths.corpora, facts={},
                               point=point)
            log.info("%s: preparing (%s)", self.where, self.wl.describe())
            self.wl.prepare(self.ctx)
            self.version = self.wl.version(self.inst)

    def iterate(self, i: int, *, warmup: bool, total: int, block: int | None = None) -> None:
        """Run iteration ``i`` and keep its raw output."""
        assert self.inst is not None and self.ctx is not None
        with self._timed():
            started = now()
            self._points.clear()
            try:
                with sentinel.Watch(self.inst.cpu_seconds) as watch:
                    raw = self.wl.run_iteration(self.ctx)
            except BenchError as e:
                if not self.inst.alive():      # say why the command failed: the instance is gone
                    raise InstanceError(f"{e} (instance {self.inst.name} died before or during iteration {i})") from e
                raise
            ended = now()
            if not self.inst.alive():
                raise InstanceError(f"instance {self.inst.name} died during iteration {i}; no result kept")
            name = f"iter-{i:02d}{'.warmup' if warmup else ''}.out"
            atomic_write_text(self.out_dir / name, raw)
            self.records.append({"iteration": i, "warmup": warmup, "file": name, "started_at": started,
                                 "ended_at": ended, "seconds": round(watch.reading.seconds, 3),
                                 "host": watch.reading.as_dict(),
                                 **({"block": block} if block is not None else {}),
                                 **({"points": list(self._points)} if self._points else {})})
            log.info("%s: iteration %d/%d%s done in %.1f s", self.where, i, total, " (warm-up)" if warmup else "",
                     watch.reading.seconds)

    def stop(self) -> None:
        if self.inst is not None:
            t0 = time.monotonic()
            self.inst.stop()
            self.busy_s += time.monotonic() - t0

    def finish(self, canary: tuple[float, float], host: dict[str, Any]) -> None:
        """Write cell.json (last: its presence says the cell is complete)."""
        assert self.ctx is not None
        write_json(self.out_dir / "cell.json", {
            "env": self.driver.env, "driver": self.driver.kind, "workload": self.wl.name, "kind": self.wl.kind,
            "round": self.rnd, "params": self.wl.params, "settings": self.driver.settings(), "labels": self.labels,
            "host": host, "inside": self.inside, "tool_version": self.version,
            "image_key": self.driver.image.get("key", ""), "facts": self.ctx.facts, "iterations": self.records,
            "description": self.wl.describe(), "wall_seconds": round(self.busy_s, 3),
            "canary_s": {"start": round(canary[0], 5), "end": round(canary[1], 5)}, "placement": self.placement,
        })


def host_memory_free_mib() -> int:
    """MemAvailable of the host, in MiB."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    return 0


def interleave_plan(held_mib: dict[str, int], free_mib: int, headroom_mib: int = MEMORY_HEADROOM_MIB
                    ) -> dict[str, str]:
    """Which environments cannot stay alive together with the others: env -> why, for those whose
    instances hold host memory (``Driver.held_memory_mib``) beyond what is free, taken in the order
    given until the free memory (less a headroom) is spent. The others interleave."""
    blocked: dict[str, str] = {}
    left = free_mib - headroom_mib
    for env, mib in held_mib.items():
        if mib <= 0:
            continue
        if mib > left:
            blocked[env] = (f"its instance holds {mib} MiB of host memory and {max(left, 0)} MiB are free beside "
                            f"the others ({headroom_mib} MiB headroom kept): measured as a block")
        else:
            left -= mib
    return blocked


def run_round(specs: list[EnvSpec], wl: Workload, rnd: int, measure: Measure, paths: StatePaths,
              image: dict[str, Any], host: dict[str, Any], out_dir: Path, *, seed: int) -> None:
    """Measure round ``rnd`` of ``wl`` on every environment of ``specs`` into ``out_dir/<env>/``."""
    check_rootfs(image)
    order = round_order([s.env for s in specs], wl.name, rnd, seed)
    by_env = {s.env: drivers.create(s, paths, image) for s in specs}
    host_name = host.get("name")
    client = HostClient(paths, image, instance_name("round", f"{wl.name}-client", rnd, host_name))
    cells = {e: CellRun(by_env[e], wl, rnd, out_dir / e, client, instance_name(e, wl.name, rnd, host_name))
             for e in order}
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    try:
        if measure.order == "sequential":
            for e in order:
                _as_block(cells[e], measure, host, reason="sequential order (measure.order)")
        else:
            held = {e: by_env[e].held_memory_mib() for e in order}
            blocked = {e: EMULATED_BLOCK for e in order if _labels(by_env[e]).get("emulated")}
            blocked |= interleave_plan({e: m for e, m in held.items() if e not in blocked}, host_memory_free_mib())
            for e in order:
                if e in blocked:
                    _as_block(cells[e], measure, host, reason=blocked[e])
            _interleaved([cells[e] for e in order if e not in blocked], measure, host, seed=seed)
    finally:
        for c in cells.values():
            c.stop()
        client.stop()
    write_json(out_dir / "round.json", {
        "workload": wl.name, "round": rnd, "order": order, "mode": measure.order,
        "placement": {e: c.placement for e, c in cells.items()}, "wall_seconds": round(time.monotonic() - t0, 3)})


def _settle(measure: Measure) -> None:
    """With ``measure.settle_s`` > 0: write the host's dirty pages and stay idle that long."""
    if measure.settle_s > 0:
        os.sync()
        time.sleep(measure.settle_s)


def _as_block(cell: CellRun, measure: Measure, host: dict[str, Any], *, reason: str) -> None:
    """One cell on its own: start, prepare, warm-up and measured iterations, stop."""
    total = measure.warmup_iterations + measure.iterations
    cell.placement = {"mode": "block", "reason": reason}
    try:
        cell.open()
        _settle(measure)
        for i in range(1, measure.warmup_iterations + 1):
            cell.iterate(i, warmup=True, total=total)
        canary_start = sentinel.canary()
        for i in range(measure.warmup_iterations + 1, total + 1):
            cell.iterate(i, warmup=False, total=total)
        canary_end = sentinel.canary()
    finally:
        cell.stop()
    cell.finish((canary_start, canary_end), host)


def _interleaved(cells: list[CellRun], measure: Measure, host: dict[str, Any], *, seed: int) -> None:
    """Start and warm up every cell's instance once, then the measured iterations in blocks: one
    iteration per cell, in an order drawn per block from the seed."""
    if not cells:
        return
    total = measure.warmup_iterations + measure.iterations
    envs = [c.driver.env for c in cells]
    for c in cells:
        c.placement = {"mode": "interleaved", "envs": envs}
        c.open()
    _settle(measure)
    for c in cells:
        for i in range(1, measure.warmup_iterations + 1):
            c.iterate(i, warmup=True, total=total)
    by_env = {c.driver.env: c for c in cells}
    canary_start = sentinel.canary()
    for b in range(1, measure.iterations + 1):
        for e in block_order(envs, cells[0].wl.name, cells[0].rnd, b, seed):
            by_env[e].iterate(measure.warmup_iterations + b, warmup=False, total=total, block=b)
    canary_end = sentinel.canary()
    for c in cells:
        c.stop()
        c.finish((canary_start, canary_end), host)


def run_cell(spec: EnvSpec, wl: Workload, rnd: int, measure: Measure, paths: StatePaths, image: dict[str, Any],
             host: dict[str, Any], out_dir: Path) -> None:
    """One cell on its own, into ``out_dir`` (iter-NN[.warmup].out per iteration, then cell.json): the
    sequential order's unit, and what tests and tools that measure one environment call."""
    check_rootfs(image)
    driver = drivers.create(spec, paths, image)
    client = HostClient(paths, image, instance_name(spec.env, f"{wl.name}-client", rnd, host.get("name")))
    cell = CellRun(driver, wl, rnd, out_dir, client, instance_name(spec.env, wl.name, rnd, host.get("name")))
    try:
        _as_block(cell, measure, host, reason="one cell on its own")
    finally:
        client.stop()
