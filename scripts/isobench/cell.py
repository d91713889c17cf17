"""Running things in environments: the warmup check of an environment, and one benchmark cell.

A cell is one environment x workload x round on a fresh instance: prepare the datasets, run
the warm-up iterations (recorded, flagged) and the measured ones, keep each iteration's raw output
as a file, and tear the instance down on every path. Every iteration records what else the host
was doing (:mod:`isobench.sentinel`), and a fixed-work canary runs on the host before the instance
starts and after it stops. ``cell.json`` is written last and atomically:
a raw directory without it is incomplete, and Snakemake removes it when the job fails.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import PREFIX, drivers, hostinfo, sentinel
from .drivers import Driver, EnvSpec, Instance, StatePaths
from .errors import BenchError, InstanceError, Unavailable
from .image import check_rootfs
from .measure import Measure
from .util import atomic_write_text, write_json
from .workloads import Context, Workload

log = logging.getLogger("isobench")


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


def run_cell(spec: EnvSpec, wl: Workload, rnd: int, measure: Measure, paths: StatePaths, image: dict[str, Any],
             host: dict[str, Any], out_dir: Path) -> None:
    """Measure one cell (round ``rnd``) into out_dir: iter-NN[.warmup].out per iteration, then cell.json.

    With ``measure.settle_s`` > 0 the host's dirty pages are written (sync) and the cell waits that
    long after preparing its datasets, before the first iteration."""
    check_rootfs(image)
    driver = drivers.create(spec, paths, image)
    labels = _labels(driver)
    where = f"cell {driver.env}/{wl.name}/round-{rnd}"
    out_dir.mkdir(parents=True, exist_ok=True)
    client_holder: list[Instance] = []

    def client() -> Instance:
        if not client_holder:
            client_holder.append(drivers.host_client(paths, image).start(
                instance_name(driver.env, f"{wl.name}-client", rnd, host.get("name"))))
        return client_holder[0]

    records = []
    settle_s, warmup_iterations = measure.settle_s, measure.warmup_iterations
    total = warmup_iterations + measure.iterations
    canary_start = sentinel.canary()
    cell_t0 = time.monotonic()
    try:
        with driver.start(instance_name(driver.env, wl.name, rnd, host.get("name"))) as inst:
            inside = inst.describe()
            points: list[dict[str, Any]] = []

            @contextlib.contextmanager
            def point(label: str, subject: str = "") -> Iterator[None]:
                with sentinel.Watch(inst.cpu_seconds) as w:
                    yield
                points.append({"point": label, "subject": subject, **w.reading.as_dict()})

            ctx = Context(inst=inst, client=client, cache_dir=paths.corpora, facts={}, point=point)
            log.info("%s: preparing (%s)", where, wl.describe())
            wl.prepare(ctx)
            version = wl.version(inst)
            if settle_s > 0:
                os.sync()
                time.sleep(settle_s)
            for i in range(1, total + 1):
                is_warmup = i <= warmup_iterations
                started = now()
                points.clear()
                with sentinel.Watch(inst.cpu_seconds) as watch:
                    raw = wl.run_iteration(ctx)
                seconds = watch.reading.seconds
                if not inst.alive():
                    raise InstanceError(f"instance {inst.name} died during iteration {i}; no result kept")
                name = f"iter-{i:02d}{'.warmup' if is_warmup else ''}.out"
                atomic_write_text(out_dir / name, raw)
                records.append({"iteration": i, "warmup": is_warmup, "file": name, "started_at": started,
                                "ended_at": now(), "seconds": round(seconds, 3),
                                "host": watch.reading.as_dict(),
                                **({"points": list(points)} if points else {})})
                log.info("%s: iteration %d/%d%s done in %.1f s", where, i, total,
                         " (warm-up)" if is_warmup else "", seconds)
    except BenchError as e:
        raise BenchError(f"{where}: {e}") from e
    finally:
        for c in client_holder:
            c.stop()
    wall_s = time.monotonic() - cell_t0
    canary_end = sentinel.canary()
    write_json(out_dir / "cell.json", {
        "env": driver.env, "driver": driver.kind, "workload": wl.name, "kind": wl.kind, "round": rnd,
        "params": wl.params, "settings": driver.settings(), "labels": labels, "host": host,
        "inside": inside, "tool_version": version, "image_key": image.get("key", ""), "facts": ctx.facts,
        "iterations": records, "description": wl.describe(), "wall_seconds": round(wall_s, 3),
        "canary_s": {"start": round(canary_start, 5), "end": round(canary_end, 5)},
    })

