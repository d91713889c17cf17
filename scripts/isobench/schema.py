"""The tidy row schema of a cell's Parquet file (results/cells/{env}/{workload}/round-{round}.parquet).

One row per (iteration, sweep point, metric). Warm-up iterations are stored too, flagged, and every
later stage excludes them from statistics. Kept in one place so collect writes it, aggregate and the
report read it, and a test checks both ends against it.
"""

from __future__ import annotations

import pyarrow as pa

VERSION = 4

#: column -> (arrow type, description); the README's schema table is generated from this
COLUMNS: dict[str, tuple[pa.DataType, str]] = {
    "env": (pa.string(), "environment name from the config (e.g. native, lxc_nat, kvm_tuned)"),
    "driver": (pa.string(), "driver kind: native | lxc | kvm"),
    "workload": (pa.string(), "workload name from the config (e.g. fio_randread)"),
    "kind": (pa.string(), "workload kind (module): compression | fio | ..."),
    "round": (pa.int32(), "round number, 1-based: a round measures the workload once on each of its environments "
                          "(interleaved by default: measured iterations in blocks of one per environment); each "
                          "cell is a fresh instance"),
    "iteration": (pa.int32(), "iteration within the cell, 1-based, warm-ups first"),
    "warmup": (pa.bool_(), "true for warm-up iterations (recorded, never counted)"),
    "point": (pa.string(), "sweep point such as 'connections=10'; empty when the workload has no sweep"),
    "metric": (pa.string(), "metric name declared by the workload module"),
    "value": (pa.float64(), "the measured value, in `unit`"),
    "unit": (pa.string(), "unit of `value` (MB/s, IOPS, µs, ...)"),
    "higher_is_better": (pa.bool_(), "direction of the metric"),
    "started_at": (pa.timestamp("us", tz="UTC"), "iteration start (host clock)"),
    "ended_at": (pa.timestamp("us", tz="UTC"), "iteration end (host clock)"),
    "tool_version": (pa.string(), "first line of the tool's --version inside the environment"),
    "host": (pa.string(), "the host the cell ran on: its name in `hosts:` on a cluster, else its short host name"),
    "host_fingerprint": (pa.string(), "hash of the host's identity when the cell ran: CPU model, cores, memory, "
                                      "kernel, virtualization, QEMU/libvirt/LXC versions, mitigations, governor"),
    "accel": (pa.string(), "none (native, lxc) | kvm | tcg: how the environment's CPU is provided"),
    "emulated": (pa.bool_(), "true when the CPU is emulated (TCG): never a KVM figure"),
    "image_key": (pa.string(), "hash of the image the tools came from"),
    "settings": (pa.string(), "JSON of the environment's settings as recorded at run time"),
    "steal_pct": (pa.float64(), "host steal time over the iteration, % of all host CPU time (sentinel)"),
    "busy_pct": (pa.float64(), "host non-idle CPU time over the iteration, % of all host CPU time"),
    "host_cpu_s": (pa.float64(), "host CPU seconds spent (user+nice+system+irq+softirq+steal) over the iteration"),
    "cpu_user_s": (pa.float64(), "host CPU seconds in user mode (user + nice) over the iteration, all CPUs"),
    "cpu_system_s": (pa.float64(), "host CPU seconds in the kernel (system + irq) over the iteration"),
    "cpu_softirq_s": (pa.float64(), "host CPU seconds in softirq (network, block completions) over the iteration"),
    "cpu_steal_s": (pa.float64(), "host CPU seconds stolen by the hypervisor under the host over the iteration"),
    "env_cpu_s": (pa.float64(), "CPU seconds the environment itself used over the iteration: the LXC container's "
                                "cgroup, the KVM guest's QEMU process and vhost workers; NaN for native (the host's "
                                "own counters are its cost)"),
    "point_seconds": (pa.float64(), "wall seconds of this row's sweep point alone (a MySQL thread count, a Redis "
                                    "connection count); NaN where the workload does not time its points"),
    "point_cpu_busy_s": (pa.float64(), "host CPU seconds (user+nice+system+irq+softirq, steal excluded) over this "
                                       "row's sweep point alone; NaN where not timed"),
    "point_subject": (pa.string(), "which metrics the point's timing covers: those named `{point_subject}_*` (a "
                                   "MySQL test times each point on its own); empty = all the point's metrics"),
    "point_env_cpu_s": (pa.float64(), "the environment's own CPU seconds over this row's sweep point alone (as "
                                      "env_cpu_s); NaN for native and where not timed"),
    "procs_running": (pa.float64(), "mean runnable threads on the host during the iteration (the work included)"),
    "load1": (pa.float64(), "host 1-minute load average at the end of the iteration"),
    "cpu_mhz": (pa.float64(), "mean host CPU clock during the iteration (NaN where unreadable)"),
    "canary_start_s": (pa.float64(), "seconds of the fixed-work host canary before the cell's first measured "
                                     "iteration (instances alive, warm-ups done)"),
    "canary_end_s": (pa.float64(), "seconds of the same canary after its last measured iteration, before any "
                                   "instance stopped"),
    "cell_seconds": (pa.float64(), "wall time of the cell's own steps: instance start, preparation, its iterations, "
                                   "stop (in an interleaved round the others' iterations are not counted)"),
}

SCHEMA = pa.schema([pa.field(name, typ, nullable=False) for name, (typ, _) in COLUMNS.items()],
                   metadata={"isobench_schema_version": str(VERSION)})


def markdown_table() -> str:
    rows = ["| column | type | meaning |", "|---|---|---|"]
    rows += [f"| `{n}` | {t} | {d} |" for n, (t, d) in COLUMNS.items()]
    return "\n".join(rows)
