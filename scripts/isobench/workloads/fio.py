"""fio block I/O: one job per workload (the paper's job set is a list of fio workloads in the config).

libaio, direct I/O, on a file in /data, which each environment backs differently (host directory,
container overlay, bind-mounted volume, guest disk). The file is written in full during prepare, so
reads hit real blocks, and the job is time-based so every run is bounded in time.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from ..drivers.base import DATA_DIR
from ..errors import ParseError
from .base import Context, Metric, Sample, Workload, parser_helper

FILE = f"{DATA_DIR}/fio.dat"
#: appended by run_iteration when fio exits non-zero, so the parser cannot miss a failure
EXIT_MARK = re.compile(r"^isobench: fio exit (\d+)$", re.M)
#: completion-latency percentiles of ``latency_percentiles: true`` (the paper's Figure 7 plots the
#: CDF of random-read-16 from fio's percentiles): fio's default list up to 99.9, asked for by name
#: (``--percentile_list``) so another fio's default cannot change it; p50 and p99 are always reported
CDF_PERCENTILES = (1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99, 99.5, 99.9)
ALWAYS = (50, 99)


def _pct_name(p: float) -> str:
    return f"{p:g}"


def _direction_metrics(d: str) -> dict[str, Metric]:
    out = {
        f"{d}_iops": Metric("IOPS", True, f"{d} operations per second", primary=True),
        f"{d}_bw": Metric("MB/s", True, f"{d} bandwidth (10^6 B/s)"),
        f"{d}_lat_p50": Metric("µs", False, f"{d} completion latency, median"),
        f"{d}_lat_p99": Metric("µs", False, f"{d} completion latency, 99th percentile"),
    }
    for p in CDF_PERCENTILES:
        if p not in ALWAYS:
            out[f"{d}_lat_p{_pct_name(p)}"] = Metric("µs", False, f"{d} completion latency, {_pct_name(p)}th "
                                                                  "percentile (latency_percentiles)")
    return out


class Fio(Workload):
    kind = "fio"
    CATEGORY = "storage"
    PARAMS = {
        "rw": {"enum": ["read", "write", "randread", "randwrite", "randrw"], "default": "randread",
               "description": "fio rw= (access pattern)"},
        "bs": {"type": "string", "pattern": "^[1-9][0-9]*[kKmM]?$", "default": "4k", "description": "block size"},
        "iodepth": {"type": "integer", "minimum": 1, "maximum": 1024, "default": 16,
                    "description": "queue depth per job"},
        "numjobs": {"type": "integer", "minimum": 1, "maximum": 64, "default": 1, "description": "parallel jobs"},
        "rwmixread": {"type": "integer", "minimum": 0, "maximum": 100, "default": 70,
                      "description": "read share in percent for rw=randrw"},
        "size_mib": {"type": "integer", "minimum": 1, "default": 256, "description": "file size in MiB"},
        "runtime_s": {"type": "integer", "minimum": 1, "maximum": 3600, "default": 10,
                      "description": "seconds per iteration (time-based)"},
        "latency_percentiles": {"type": "boolean", "default": False,
                                "description": "also report the completion-latency percentiles "
                                               f"{', '.join(map(_pct_name, CDF_PERCENTILES))} (a CDF, the "
                                               "paper's Figure 7); off: p50 and p99 only"},
    }
    METRICS = {**_direction_metrics("read"), **_direction_metrics("write"),
               "total_iops": Metric("IOPS", True, "read + write operations per second")}
    TOOLS = (("fio", "--version"),)
    VERSION_ARGV = ("fio", "--version")

    def prepare(self, ctx: Context) -> None:
        size = self.params["size_mib"]
        ctx.inst.exec(["fio", "--name=prepare", f"--filename={FILE}", "--rw=write", "--bs=1M",
                       f"--size={size}M", "--ioengine=libaio", "--direct=1", "--iodepth=8",
                       "--output-format=terse"], timeout=3600).check("fio prepare (write the test file)")
        ctx.facts["fio_file_mib"] = size

    def argv(self) -> list[str]:
        p = self.params
        argv = ["fio", "--output-format=json", f"--name={self.name}", f"--filename={FILE}",
                f"--rw={p['rw']}", f"--bs={p['bs']}", f"--iodepth={p['iodepth']}",
                f"--numjobs={p['numjobs']}", f"--size={p['size_mib']}M", f"--runtime={p['runtime_s']}",
                "--time_based", "--ioengine=libaio", "--direct=1", "--group_reporting", "--thread"]
        if p["rw"] == "randrw":
            argv.append(f"--rwmixread={p['rwmixread']}")
        if p.get("latency_percentiles"):
            argv.append("--percentile_list=" + ":".join(map(_pct_name, CDF_PERCENTILES)))
        return argv

    def run_iteration(self, ctx: Context) -> str:
        res = ctx.inst.exec(self.argv(), timeout=self.params["runtime_s"] + 300)
        if res.returncode != 0:
            return f"{res.stdout}\n{res.stderr}\nisobench: fio exit {res.returncode}\n"
        return res.stdout

    @classmethod
    def parse(cls, raw: str, params: dict[str, Any]) -> list[Sample]:
        start = raw.find("{")
        if start < 0:
            raise ParseError("fio: no JSON in the output (failed or truncated run)")
        try:
            doc, _ = json.JSONDecoder().raw_decode(raw, start)
        except json.JSONDecodeError as e:
            raise ParseError(f"fio: output is not complete JSON ({e.msg} at char {e.pos})") from None
        jobs = doc.get("jobs") or []
        if not jobs:
            raise ParseError("fio: JSON has no jobs")
        job = jobs[0]
        if job.get("error"):
            raise ParseError(f"fio: job reported error {job['error']} ({os.strerror(job['error'])})")
        failed = EXIT_MARK.search(raw)
        if failed:
            raise ParseError(f"fio: exited with status {failed[1]}")
        cdf = bool(params.get("latency_percentiles"))
        samples, total = [], 0.0
        for d in ("read", "write"):
            st = job.get(d) or {}
            if not st.get("io_bytes"):
                continue
            try:
                pct = st["clat_ns"]["percentile"]
                samples += [Sample(f"{d}_iops", float(st["iops"])),
                            Sample(f"{d}_bw", float(st["bw_bytes"]) / 1e6),
                            Sample(f"{d}_lat_p50", pct["50.000000"] / 1000.0),
                            Sample(f"{d}_lat_p99", pct["99.000000"] / 1000.0)]
                if cdf:
                    samples += _cdf_samples(d, pct)
            except (KeyError, TypeError) as e:
                raise ParseError(f"fio: {d} statistics incomplete (missing {e})") from None
            total += float(st["iops"])
        if not samples:
            raise ParseError("fio: the job moved no data")
        if params.get("rw") == "randrw":
            samples.append(Sample("total_iops", total))
        return samples

    def describe(self) -> str:
        p = self.params
        return (f"fio rw={p['rw']} bs={p['bs']} iodepth={p['iodepth']} numjobs={p['numjobs']} "
                f"size={p['size_mib']}MiB {p['runtime_s']}s libaio direct"
                + (", completion-latency percentiles" if p.get("latency_percentiles") else ""))


@parser_helper
def _cdf_samples(d: str, pct: dict[str, Any]) -> list[Sample]:
    """The percentiles besides p50/p99, in ascending order; KeyError when fio left one out."""
    out = []
    for p in CDF_PERCENTILES:
        if p not in ALWAYS:
            out.append(Sample(f"{d}_lat_p{_pct_name(p)}", pct[f"{p:f}"] / 1000.0))
    return out
