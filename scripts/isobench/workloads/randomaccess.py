"""RandomAccess (GUPS): HPCC's RandomAccess tests, giga-updates per second of a random-XOR table walk.

The paper ran HPCC's RandomAccess core with OpenMP threads sharing one table (2^33 words = 25 % of
its RAM, 128 update streams). Debian's hpcc has no OpenMP, so the closest equivalent is
StarRandomAccess: every MPI process (one per core) updates its own table at the same time; the
system rate ``gups`` is the sum over processes. The single-process rate and the MPI version (one
table distributed over the processes, updates routed as messages) are recorded beside it. Table
sizes follow N: each process's table is the largest power of two <= N*N/processes words (8 B).
hpcc runs the RandomAccess tests first; the run is stopped after SingleRandomAccess, so the
unrelated later tests (DGEMM, HPL...) are not waited for. Every test's own verification must pass.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import ParseError
from ..schematypes import integer
from .base import Metric, Sample
from .hpcc import HPCC_PARAMS, HpccWorkload


class RandomAccess(HpccWorkload):
    kind = "randomaccess"
    CATEGORY = "memory"
    STOP_AFTER = "SingleRandomAccess"
    PARAMS = {
        "n": integer(256, 1000000, default=2900,
                     description="HPL size N that hpcc derives the tables from: per-process table = largest "
                                 "power of two <= N*N/processes words of 8 bytes"),
        **HPCC_PARAMS,
    }
    METRICS = {
        "gups": Metric("GUPS", True, "StarRandomAccess: all processes at once, each on its own table; "
                                     "sum of their rates (10^9 updates/s)", primary=True),
        "gups_single": Metric("GUPS", True, "SingleRandomAccess: one process alone"),
        "gups_mpi": Metric("GUPS", True, "MPIRandomAccess: one table distributed over the processes"),
    }

    def sizes(self) -> list[int]:
        return [self.params["n"]]

    @classmethod
    def parse(cls, raw: str, params: dict[str, Any]) -> list[Sample]:
        secs = cls.sections(raw, ("MPIRandomAccess", "StarRandomAccess", "SingleRandomAccess"))
        mpi, star, single = secs["MPIRandomAccess"], secs["StarRandomAccess"], secs["SingleRandomAccess"]
        if "(passed)" not in mpi:
            raise ParseError("randomaccess: MPIRandomAccess verification did not pass")
        for name, body in (("StarRandomAccess", star), ("SingleRandomAccess", single)):
            m = re.search(r"^Node\(s\) with error (\d+)$", body, re.M)
            if not m or int(m[1]):
                raise ParseError(f"randomaccess: {name} verification failed ({m[0] if m else 'no error count'})")
        procs = cls.number(raw, r"^Running on (\d+) processors", "process count")
        expected = params.get("processes")
        if expected is not None and int(procs) != expected:
            raise ParseError(f"randomaccess: hpcc ran on {int(procs)} processes, expected {expected}")
        if params.get("n") and params.get("processes"):
            want = (params["n"] ** 2 // params["processes"]).bit_length() - 1
            got = re.search(r"^Main table size\s+= 2\^(\d+) ", star, re.M)
            if not got or int(got[1]) != want:
                raise ParseError(f"randomaccess: StarRandomAccess table is 2^{got[1] if got else '?'} words, "
                                 f"expected 2^{want} from N={params['n']} on {params['processes']} processes")
        avg = cls.number(star, r"^Average GUP/s ([\d.eE+-]+)$", "StarRandomAccess average GUP/s")
        return [
            Sample("gups", avg * procs),
            Sample("gups_single", cls.number(single, r"^Single GUP/s ([\d.eE+-]+)$", "SingleRandomAccess GUP/s")),
            Sample("gups_mpi", cls.number(mpi, r"^([\d.eE+-]+) Billion\(10\^9\) Updates\s+per second",
                                          "MPIRandomAccess GUP/s")),
        ]

    def describe(self) -> str:
        p = self.params
        return (f"HPCC RandomAccess (Star/Single/MPI), tables from N={p['n']}, {p['processes']} MPI processes")
