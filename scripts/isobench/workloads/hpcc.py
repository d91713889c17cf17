"""HPC Challenge (Debian ``hpcc`` 1.5.0) shared by the linpack and randomaccess workloads.

hpcc reads ``hpccinf.txt`` (an HPL.dat plus four PTRANS lines) from its working directory and
appends every result to ``hpccoutf.txt`` there. It always runs all of its tests, in a fixed order:
RandomAccess (MPI, Star, Single, then the LCG variants), PTRANS, DGEMM, STREAM, FFT, latency and
bandwidth, and HPL last; every size follows the largest HPL N (per-process memory = N*N*8/(P*Q)).

Debian's build is linked against the reference BLAS and has no OpenMP, so the cores are used by
MPI processes (``mpirun -np P*Q``, one per core, bound to cores; grid P <= Q, as square as the
count allows). Singleton mode (plain ``hpcc`` without mpirun) works but spends ~5 s in MPI start-up
on this host, so mpirun is used. Open MPI's shared-memory transport is forced (``btl=self,vader``)
so no network interface is ever involved.

A workload that needs only the first tests (RandomAccess) stops the run once the last section it
reads is complete (``stop_after``): the tests it reads ran in full, undisturbed, and the unrelated
ones after them (DGEMM and HPL dominate the time) are not waited for. The raw output is the
``hpccoutf.txt`` text, mpirun's own output and one trailer line with the exit status.
"""

from __future__ import annotations

import math
import re
from typing import Any

from ..drivers.base import DATA_DIR
from ..errors import ParseError
from .base import Context, Workload, parser_helper

TRAILER = re.compile(r"^isobench-hpcc exit=(?P<rc>\d+) stopped=(?P<stopped>[01]) ms=(?P<ms>\d+) end$", re.M)
SECTION = re.compile(r"^Begin of (?P<name>\w+) section\.\n(?P<body>.*?)^End of (?P=name) section\.$", re.M | re.S)
OUT_MARK = "== hpccoutf.txt =="
MPI_MARK = "== mpirun output =="

HPCC_PARAMS: dict[str, Any] = {
    "processes": {"type": "integer", "minimum": 1, "maximum": 1024, "default": 2,
                  "description": "MPI processes, one per core (the paper: one thread per hardware thread); "
                                 "hpcc has no OpenMP in Debian's build"},
    "nb": {"type": "integer", "minimum": 16, "maximum": 1024, "default": 64,
           "description": "HPL block size NB"},
    "timeout_s": {"type": "integer", "minimum": 10, "maximum": 86400, "default": 900,
                  "description": "hard limit for one hpcc run (mpirun is killed after it)"},
}


def grid(processes: int) -> tuple[int, int]:
    """The most nearly square P x Q = processes with P <= Q (HPL prefers flat grids)."""
    p = int(math.isqrt(processes))
    while processes % p:
        p -= 1
    return p, processes // p


def hpccinf(ns: list[int], nb: int, p: int, q: int) -> str:
    """hpccinf.txt: HPL's settings (right-looking, Crout recursion, 1-ring-modified broadcast,
    lookahead 1, the hpcc defaults) for the given sizes, block and grid; PTRANS follows HPL."""
    lines = [
        "HPLinpack benchmark input file (isobench)",
        "Innovative Computing Laboratory, University of Tennessee",
        "HPL.out      output file name (if any)",
        "8            device out (6=stdout,7=stderr,file)",
        f"{len(ns):<12} # of problems sizes (N)",
        f"{' '.join(map(str, ns)):<12} Ns",
        "1            # of NBs",
        f"{nb:<12} NBs",
        "0            PMAP process mapping (0=Row-,1=Column-major)",
        "1            # of process grids (P x Q)",
        f"{p:<12} Ps",
        f"{q:<12} Qs",
        "16.0         threshold",
        "1            # of panel fact",
        "2            PFACTs (0=left, 1=Crout, 2=Right)",
        "1            # of recursive stopping criterium",
        "4            NBMINs (>= 1)",
        "1            # of panels in recursion",
        "2            NDIVs",
        "1            # of recursive panel fact.",
        "1            RFACTs (0=left, 1=Crout, 2=Right)",
        "1            # of broadcast",
        "1            BCASTs (0=1rg,1=1rM,2=2rg,3=2rM,4=Lng,5=LnM)",
        "1            # of lookahead depth",
        "1            DEPTHs (>=0)",
        "2            SWAP (0=bin-exch,1=long,2=mix)",
        "64           swapping threshold",
        "0            L1 in (0=transposed,1=no-transposed) form",
        "0            U  in (0=transposed,1=no-transposed) form",
        "1            Equilibration (0=no,1=yes)",
        "8            memory alignment in double (> 0)",
        "##### This line (no. 32) is ignored (it serves as a separator). ######",
        "0                               Number of additional problem sizes for PTRANS",
        "1200                            values of N",
        "0                               number of additional blocking sizes for PTRANS",
        "64                              values of NB",
    ]
    return "\n".join(lines) + "\n"


class HpccWorkload(Workload):
    """Common part: write hpccinf.txt in prepare, run hpcc under mpirun, split the output."""

    TOOLS = (("mpirun", "--version"), ("test", "-x", "/usr/bin/hpcc"))
    VERSION_ARGV = ("dpkg-query", "-W", "-f", "hpcc ${Version}\\n", "hpcc")
    #: the last section this workload reads; the run is stopped once it is complete (None: run all)
    STOP_AFTER: str | None = None

    @property
    def workdir(self) -> str:
        return f"{DATA_DIR}/hpcc-{self.kind}"

    def sizes(self) -> list[int]:
        raise NotImplementedError

    def prepare(self, ctx: Context) -> None:
        p, q = grid(self.params["processes"])
        text = hpccinf(self.sizes(), self.params["nb"], p, q)
        ctx.inst.exec(["/bin/sh", "-c", f"mkdir -p {self.workdir} && cat > {self.workdir}/hpccinf.txt"],
                      input=text.encode(), timeout=60).check("write hpccinf.txt")
        ctx.facts.update(hpcc_grid=f"{p}x{q}", hpcc_n=max(self.sizes()), hpcc_nb=self.params["nb"])

    def command(self) -> str:
        p = self.params
        stop = ""
        if self.STOP_AFTER:
            stop = (f"while kill -0 $pid 2>/dev/null; do "
                    f"if grep -q '^End of {self.STOP_AFTER} section' hpccoutf.txt 2>/dev/null; then "
                    f"stopped=1; kill $pid; break; fi; sleep 0.1; done; ")
        return (f"exec 2>&1; cd {self.workdir} && rm -f hpccoutf.txt mpirun.log && "
                "export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader; "
                f"stopped=0; s=$(date +%s%N); "
                f"timeout -k 10 {p['timeout_s']} mpirun -np {p['processes']} --bind-to core hpcc "
                f">mpirun.log 2>&1 & pid=$!; {stop}wait $pid; rc=$?; e=$(date +%s%N); "
                f"echo '{OUT_MARK}'; cat hpccoutf.txt 2>/dev/null; echo '{MPI_MARK}'; cat mpirun.log; "
                "echo \"isobench-hpcc exit=$rc stopped=$stopped ms=$(( (e - s) / 1000000 )) end\"")

    def run_iteration(self, ctx: Context) -> str:
        res = ctx.inst.sh(self.command(), timeout=self.params["timeout_s"] + 60)
        return f"$ {self.command()}\n{res.stdout}{res.stderr}"

    @classmethod
    @parser_helper
    def sections(cls, raw: str, need: tuple[str, ...]) -> dict[str, str]:
        """The complete sections of hpccoutf.txt; ParseError unless the run ended as planned and
        every section in ``need`` is there."""
        m = TRAILER.search(raw)
        if not m:
            raise ParseError(f"{cls.kind}: no isobench-hpcc trailer (truncated output or the run was cut off)")
        start = re.search(f"^{OUT_MARK}$", raw, re.M)
        end = re.search(f"^{MPI_MARK}$", raw, re.M)
        if not start or not end or end.start() < start.end():
            raise ParseError(f"{cls.kind}: output markers missing (garbled output)")
        text = raw[start.end():end.start()]
        if m["stopped"] == "0" and int(m["rc"]) != 0:
            tail = raw[end.end():m.start()].strip().splitlines()
            raise ParseError(f"{cls.kind}: hpcc exited with {m['rc']} ({(tail or [''])[-1][:200]})")
        if "HPL ERROR" in raw:
            # hpcc then ignores hpccinf.txt and runs with its own default sizes
            err = re.search(r"^>>> (.*) <<<$", raw, re.M)
            raise ParseError(f"{cls.kind}: hpcc rejected hpccinf.txt ({err[1] if err else 'HPL ERROR'})")
        found = {s["name"]: s["body"] for s in SECTION.finditer(text)}
        missing = [n for n in need if n not in found]
        if missing:
            raise ParseError(f"{cls.kind}: hpcc output lacks complete section(s) {', '.join(missing)}")
        return found

    @staticmethod
    @parser_helper
    def number(body: str, pattern: str, what: str) -> float:
        m = re.search(pattern, body, re.M)
        if not m:
            raise ParseError(f"hpcc: no {what} in the output")
        value = float(m.group(1))
        if not math.isfinite(value) or value <= 0:
            raise ParseError(f"hpcc: implausible {what} {value}")
        return value
