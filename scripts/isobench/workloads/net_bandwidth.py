"""Network bandwidth (the paper's nuttcp): one TCP stream, iperf3 server inside, client on the host.

The server (``iperf3 -s``) runs inside the environment, bound to its own address only; the client
runs on the host (the image's iperf3 in a host-side chroot) and connects to the environment's
endpoint, so the traffic crosses exactly the path a host-side peer would use (loopback, veth and
bridge, DNAT, or the VM's virtual NIC). Each iteration measures both directions, one after the
other: host -> environment (the environment receives) and, with ``-R``, environment -> host (the
environment transmits). The metric is the receiver's goodput over ``seconds``. The paper used a
second machine over 10 GbE, where every setup reached line rate and the difference showed only in
CPU cycles per byte; here the path is on one host, so the rate itself is CPU-bound and shows it.

Both ends give up on a stalled transfer after 5-10 s without progress (iperf3's send/receive
timeouts), and a direction that failed or stalled is run again, up to three attempts. Every
attempt stays in the raw output, and the parser takes the last attempt of each direction.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from typing import Any

from ..errors import InstanceError, ParseError
from .base import Context, Metric, Sample, Workload
from .servers import END, lines, require_end, start_server

PORT = 15201
STALL_MS = 5000
#: iperf3 accepts a receive timeout only on the receiving side, a send timeout on either
DIRECTIONS = {"to_env": ["--snd-timeout", str(STALL_MS)],
              "from_env": ["-R", "--snd-timeout", str(STALL_MS), "--rcv-timeout", str(STALL_MS)]}
MARK = re.compile(r"^### isobench direction=(?P<d>\w+) attempt=(?P<n>\d+) exit=(?P<rc>\d+)$", re.M)
ATTEMPTS = 3


class NetBandwidth(Workload):
    kind = "net_bandwidth"
    CATEGORY = "network"
    PARAMS = {
        "seconds": {"type": "integer", "minimum": 1, "maximum": 3600, "default": 1,
                    "description": "iperf3 -t: seconds per direction (the paper's nuttcp: 10)"},
    }
    METRICS = {
        "to_env": Metric("Gbit/s", True, "TCP goodput host -> environment, measured at the receiver",
                         primary=True),
        "from_env": Metric("Gbit/s", True, "TCP goodput environment -> host (iperf3 -R), measured at the receiver",
                           primary=True),
    }
    TOOLS = (("iperf3", "--version"), ("ss", "-V"))
    VERSION_ARGV = ("iperf3", "--version")

    def prepare(self, ctx: Context) -> None:
        start_server(ctx.inst, ["iperf3", "-s", "-B", ctx.inst.bind_address, "-p", str(PORT),
                                "--snd-timeout", str(STALL_MS), "--rcv-timeout", str(2 * STALL_MS)],
                     tag="isobench-iperf3", port=PORT)
        ep = ctx.inst.endpoint(PORT)
        ctx.facts["iperf3_endpoint"] = f"{ep.host}:{ep.port}"

    def argv(self, host: str, port: int, direction: str) -> list[str]:
        return ["iperf3", "-c", host, "-p", str(port), "-t", str(self.params["seconds"]), "-P", "1",
                "--connect-timeout", "5000", "--json", *DIRECTIONS[direction]]

    def run_iteration(self, ctx: Context) -> str:
        ep, client = ctx.inst.endpoint(PORT), ctx.client()
        parts = []
        for direction in DIRECTIONS:
            argv = self.argv(ep.host, ep.port, direction)
            for attempt in range(1, ATTEMPTS + 1):
                try:
                    res = client.exec(argv, timeout=self.params["seconds"] + 30)
                    rc, text = res.returncode, res.stdout + res.stderr
                except InstanceError as e:  # a stalled client, killed by the exec timeout
                    rc, text = 124, f"isobench: {e}\n"
                parts.append(f"### isobench direction={direction} attempt={attempt} exit={rc}\n"
                             f"$ {shlex.join(argv)}\n{lines(text)}")
                if rc == 0 and '"error"' not in text:
                    break
                time.sleep(1.0)  # the server finishes the failed test (or says it is busy) first
        return "".join(parts) + END

    @classmethod
    def parse(cls, raw: str, params: dict[str, Any]) -> list[Sample]:
        require_end(cls.kind, raw)
        marks = list(MARK.finditer(raw))
        found = sorted({m["d"] for m in marks})
        if found != sorted(DIRECTIONS):
            raise ParseError(f"net_bandwidth: expected both directions, found {found} (truncated output?)")
        # the last attempt of each direction counts; earlier ones failed and are kept for the record
        last = {m["d"]: i for i, m in enumerate(marks)}
        samples = []
        for d in DIRECTIONS:
            i = last[d]
            m = marks[i]
            body = raw[m.end():marks[i + 1].start() if i + 1 < len(marks) else len(raw)]
            start, end = body.find("{"), body.rfind("}")
            if start < 0 or end < start:
                raise ParseError(f"net_bandwidth {d}: no iperf3 JSON (exit {m['rc']})")
            try:
                doc = json.loads(body[start:end + 1])
            except json.JSONDecodeError as e:
                raise ParseError(f"net_bandwidth {d}: iperf3 JSON incomplete ({e.msg} at char {e.pos})") from None
            if doc.get("error") or int(m["rc"]) != 0:
                raise ParseError(f"net_bandwidth {d}: iperf3 failed (exit {m['rc']}): {doc.get('error', '')}")
            try:
                reverse = doc["start"]["test_start"]["reverse"]
                streams = doc["start"]["test_start"]["num_streams"]
                recv = doc["end"]["sum_received"]
                bps, seconds = float(recv["bits_per_second"]), float(recv["seconds"])
            except (KeyError, TypeError, ValueError) as e:
                raise ParseError(f"net_bandwidth {d}: iperf3 JSON lacks {e}") from None
            if bool(reverse) != (d == "from_env") or streams != 1:
                raise ParseError(f"net_bandwidth {d}: JSON says reverse={reverse} streams={streams}")
            if bps <= 0 or seconds <= 0:
                raise ParseError(f"net_bandwidth {d}: no data received ({bps} bit/s over {seconds} s)")
            if params.get("seconds") and seconds < 0.9 * params["seconds"]:
                raise ParseError(f"net_bandwidth {d}: the transfer ended after {seconds:.2f} s of "
                                 f"{params['seconds']} s")
            samples.append(Sample(d, bps / 1e9))
        return samples

    def describe(self) -> str:
        return f"iperf3 1 TCP stream, {self.params['seconds']} s each way, server inside, client on the host"
