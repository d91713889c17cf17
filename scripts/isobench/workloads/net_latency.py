"""Network latency (the paper's netperf TCP_RR / UDP_RR): request/response round trips, one in flight.

Server inside the environment, client on the host; each transaction is a ``request_bytes`` request
answered by a ``response_bytes`` response (the paper: 100 and 200), the next request is sent only
after the whole response arrived, TCP with TCP_NODELAY over one connection, UDP one datagram each
way. The metric is the round-trip time in µs: the mean (total time / transactions, which is the
paper's 10^6 / transactions-per-second) and the median and 99th percentile of the per-transaction
times (from a histogram of 0.1 µs bins, so long runs need little memory). 200 untimed transactions
come first.

Deviation: netperf and qperf are not in the image, and sockperf (which is) only echoes the request
back, so it cannot answer 100 bytes with 200. Both ends are therefore a 40-line Perl program (below)
using plain sysread/syswrite on blocking sockets. On this host's loopback it measured the same
round trip as sockperf ping-pong (TCP ~20 µs both, 100-byte messages), so the interpreter adds no
visible cost at this scale. A UDP datagram that gets no answer within 2 s fails the iteration
(netperf would stall) rather than being counted.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import ParseError
from ..schematypes import choices, integer, number
from .base import Context, Metric, Sample, Workload, metric_family
from .servers import marked_runs, record, start_server, transcript

PORT = 15301
SCRIPT = "/tmp/isobench-rr.pl"
PROTOCOLS = ("tcp", "udp")
RESULT = re.compile(r"^isobench-rr proto=(?P<proto>tcp|udp) req=(?P<req>\d+) resp=(?P<resp>\d+) n=(?P<n>\d+) "
                    r"seconds=(?P<s>[\d.]+) mean_us=(?P<mean>[\d.]+) p50_us=(?P<p50>[\d.]+) "
                    r"p99_us=(?P<p99>[\d.]+)$", re.M)
MARK = re.compile(r"^### isobench proto=(?P<proto>\w+) exit=(?P<rc>\d+)$", re.M)

PERL = r"""#!/usr/bin/perl
# isobench request/response: server PROTO ADDR PORT REQ RESP | client PROTO ADDR PORT REQ RESP SECONDS
use strict; use warnings;
use Socket qw(PF_INET SOCK_STREAM SOCK_DGRAM SOL_SOCKET SO_REUSEADDR SO_RCVTIMEO IPPROTO_TCP TCP_NODELAY
              pack_sockaddr_in inet_aton);
use Time::HiRes qw(clock_gettime CLOCK_MONOTONIC);
my ($mode, $proto, $addr, $port, $req, $resp, $secs) = @ARGV;
my $tcp = $proto eq 'tcp';
my $sin = pack_sockaddr_in($port, inet_aton($addr)) or die "bad address $addr\n";
socket(my $s, PF_INET, $tcp ? SOCK_STREAM : SOCK_DGRAM, 0) or die "socket: $!\n";
sub readn { my ($fh, $n) = @_; my $buf = '';
  while (length($buf) < $n) { my $r = sysread($fh, $buf, $n - length($buf), length($buf)); return undef unless $r; }
  return $buf; }
if ($mode eq 'server') {
  setsockopt($s, SOL_SOCKET, SO_REUSEADDR, 1); bind($s, $sin) or die "bind $addr:$port: $!\n";
  my $out = 'r' x $resp;
  if ($tcp) {
    listen($s, 16) or die "listen: $!\n";
    while (1) { accept(my $c, $s) or next; setsockopt($c, IPPROTO_TCP, TCP_NODELAY, 1);
      while (defined(readn($c, $req))) { syswrite($c, $out) == $resp or last; } close($c); }
  } else {
    while (1) { my $from = recv($s, my $in, 65536, 0); send($s, $out, 0, $from) if defined $from; }
  }
  exit 0;
}
$SIG{ALRM} = sub { die "isobench-rr error=stalled\n" }; alarm($secs + 30);
connect($s, $sin) or die "connect $addr:$port: $!\n";
if ($tcp) { setsockopt($s, IPPROTO_TCP, TCP_NODELAY, 1); }
else { setsockopt($s, SOL_SOCKET, SO_RCVTIMEO, pack('l!l!', 2, 0)); }
my $out = 'q' x $req;
sub rr { syswrite($s, $out) == $req or die "isobench-rr error=send $!\n";
  my $in = '';
  if ($tcp) { $in = readn($s, $resp); die "isobench-rr error=closed\n" unless defined $in; }
  else { defined(recv($s, $in, 65536, 0)) or die "isobench-rr error=timeout\n"; }
  length($in) == $resp or die "isobench-rr error=response of " . length($in) . " bytes\n"; }
rr() for 1 .. 200;
# per-transaction times in a histogram of 0.1 µs bins (bounded memory for long runs)
my (%hist, $n, $t);
my $t0 = clock_gettime(CLOCK_MONOTONIC); my $end = $t0 + $secs;
do { my $t1 = clock_gettime(CLOCK_MONOTONIC); rr(); $t = clock_gettime(CLOCK_MONOTONIC);
     $hist{int(($t - $t1) * 1e7)}++; $n++; } while ($t < $end);
my @bins = sort { $a <=> $b } keys %hist;
my $pct = sub { my $rank = int($_[0] * $n + 0.999999); my $seen = 0;
  for my $bin (@bins) { $seen += $hist{$bin}; return ($bin + 0.5) / 10 if $seen >= $rank; } };
printf "isobench-rr proto=%s req=%d resp=%d n=%d seconds=%.6f mean_us=%.3f p50_us=%.3f p99_us=%.3f\n",
  $proto, $req, $resp, $n, $t - $t0, ($t - $t0) * 1e6 / $n, $pct->(0.5), $pct->(0.99);
"""


class NetLatency(Workload):
    kind = "net_latency"
    CATEGORY = "network"
    PARAMS = {
        "protocols": choices(PROTOCOLS, default=["tcp", "udp"], description="request/response over TCP and/or UDP"),
        "request_bytes": integer(1, 65000, default=100, description="request size (the paper: 100)"),
        "response_bytes": integer(1, 65000, default=200, description="response size (the paper: 200)"),
        "seconds": number(0.1, 3600, default=0.5,
                          description="measured seconds per protocol (the paper's netperf: 60)"),
    }
    METRICS = metric_family({p: p.upper() for p in PROTOCOLS}, {
        "mean": Metric("µs", False, "{} round trip, mean (10^6 / transactions per second)", primary=True),
        "p50": Metric("µs", False, "{} round trip, median"),
        "p99": Metric("µs", False, "{} round trip, 99th percentile"),
    })
    TOOLS = (("perl", "-MTime::HiRes", "-MSocket", "-e", "1"), ("ss", "-V"))
    VERSION_ARGV = ("perl", "-e", "print qq{perl $^V (isobench-rr)\\n}")

    def _install(self, inst) -> None:
        inst.exec(["/bin/sh", "-c", f"cat > {SCRIPT}"], input=PERL.encode(), timeout=60).check("write rr.pl")

    def prepare(self, ctx: Context) -> None:
        p = self.params
        self._install(ctx.inst)
        self._install(ctx.client())
        for proto in p["protocols"]:
            start_server(ctx.inst, ["perl", SCRIPT, "server", proto, ctx.inst.bind_address, str(PORT),
                                    str(p["request_bytes"]), str(p["response_bytes"])],
                         tag=f"isobench-rr-{proto}", port=PORT, proto=proto)
        ep = ctx.inst.endpoint(PORT)
        ctx.facts["rr_endpoint"] = f"{ep.host}:{ep.port}"

    def argv(self, proto: str, host: str, port: int) -> list[str]:
        p = self.params
        return ["perl", SCRIPT, "client", proto, host, str(port), str(p["request_bytes"]),
                str(p["response_bytes"]), str(p["seconds"])]

    def run_iteration(self, ctx: Context) -> str:
        ep, client = ctx.inst.endpoint(PORT), ctx.client()
        parts = []
        for proto in self.params["protocols"]:
            argv = self.argv(proto, ep.host, ep.port)
            res = client.exec(argv, timeout=self.params["seconds"] + 60)
            parts.append(record(f"proto={proto}", argv, res.returncode, res.stdout, res.stderr))
        return transcript(parts)

    @classmethod
    def parse(cls, raw: str, params: dict[str, Any]) -> list[Sample]:
        runs = marked_runs(cls.kind, raw, MARK)
        want = list(params.get("protocols") or PROTOCOLS)
        found = [m["proto"] for m, _ in runs]
        if found != want:
            raise ParseError(f"net_latency: expected runs for {want}, found {found}")
        samples = []
        for m, body in runs:
            proto = m["proto"]
            r = RESULT.search(body)
            if int(m["rc"]) != 0 or not r:
                err = re.search(r"isobench-rr error=.*|^.*(connect|bind).*$", body, re.M)
                raise ParseError(f"net_latency {proto}: client failed (exit {m['rc']}): "
                                 f"{err[0] if err else 'no result line'}")
            if r["proto"] != proto or int(r["n"]) < 1:
                raise ParseError(f"net_latency {proto}: result line does not match the run")
            for key, size in (("req", "request_bytes"), ("resp", "response_bytes")):
                if params.get(size) is not None and int(r[key]) != params[size]:
                    raise ParseError(f"net_latency {proto}: {key}={r[key]} but {size}={params[size]}")
            values = {k: float(r[k]) for k in ("mean", "p50", "p99")}
            if min(values.values()) <= 0 or not values["p50"] <= values["p99"]:
                raise ParseError(f"net_latency {proto}: implausible latencies {values}")
            samples += [Sample(f"{proto}_{k}", v) for k, v in values.items()]
        return samples

    def describe(self) -> str:
        p = self.params
        return (f"request/response {p['request_bytes']}/{p['response_bytes']} B, one in flight, "
                f"{'+'.join(p['protocols']).upper()}, {p['seconds']} s each (Perl, server inside)")
