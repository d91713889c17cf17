"""Linpack (the paper's Intel MKL LINPACK): HPL as run by hpcc, GFLOPS of LU factorisation and solve.

The paper ran Intel's optimized LINPACK binary (N=45000, 10 trials of one invocation, mean GFLOPS).
Here it is HPL inside Debian's hpcc (reference BLAS, no OpenMP), one MPI process per core on a
P x Q grid. Every other hpcc test runs before HPL and is not counted; ``trials`` repeats N within
one invocation and the metric is their mean, as in the paper. HPL's residual check must pass for
every trial, otherwise the iteration yields no number.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import ParseError
from ..schematypes import integer
from .base import Metric, Sample
from .hpcc import HPCC_PARAMS, HpccWorkload

#: an HPL result line: T/V, N, NB, P, Q, Time, Gflops
RESULT = re.compile(r"^(W[RC]\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+e[+-]\d+|[\d.]+)\s*$", re.M)
CHECKS = re.compile(r"^\s*(\d+) tests completed and passed residual checks,\s*\n"
                    r"\s*(\d+) tests completed and failed residual checks,\s*\n"
                    r"\s*(\d+) tests skipped because of illegal input values\.", re.M)


class Linpack(HpccWorkload):
    kind = "linpack"
    CATEGORY = "cpu"
    PARAMS = {
        "n": integer(256, 1000000, default=1536,
                     description="HPL problem size N (the paper: 45000, a 16.2 GB matrix = 6% of its RAM); "
                                 "the matrix takes N*N*8 bytes"),
        "trials": integer(1, 20, default=1, description="HPL runs of size N within one hpcc invocation; the "
                                                        "metric is their mean (the paper: 10)"),
        **HPCC_PARAMS,
    }
    METRICS = {"gflops": Metric("GFLOPS", True, "HPL floating-point rate (10^9 flop/s), mean over trials",
                                primary=True)}

    def sizes(self) -> list[int]:
        return [self.params["n"]] * self.params["trials"]

    @classmethod
    def parse(cls, raw: str, params: dict[str, Any]) -> list[Sample]:
        body = cls.sections(raw, ("HPL",))["HPL"]
        results = RESULT.findall(body)
        checks = CHECKS.search(body)
        if not results or not checks:
            raise ParseError("linpack: HPL section without results or residual summary")
        passed, failed, skipped = (int(x) for x in checks.groups())
        if failed or skipped or passed != len(results):
            raise ParseError(f"linpack: HPL residual checks: {passed} passed, {failed} failed, {skipped} skipped "
                             f"for {len(results)} results")
        want = params.get("trials")
        if want is not None and len(results) != want:
            raise ParseError(f"linpack: {len(results)} HPL results, expected {want} trials")
        for r in results:
            n, nb, p, q = (int(x) for x in r[1:5])
            if (params.get("n") not in (None, n) or params.get("nb") not in (None, nb)
                    or params.get("processes") not in (None, p * q)):
                raise ParseError(f"linpack: HPL ran N={n} NB={nb} grid {p}x{q}, not the configured N={params.get('n')} "
                                 f"NB={params.get('nb')} on {params.get('processes')} processes")
        gflops = [float(r[6]) for r in results]
        if min(gflops) <= 0:
            raise ParseError(f"linpack: implausible GFLOPS {gflops}")
        return [Sample("gflops", sum(gflops) / len(gflops))]

    def describe(self) -> str:
        p = self.params
        return (f"HPL (hpcc) N={p['n']} NB={p['nb']} x{p['trials']} trials, {p['processes']} MPI processes, "
                "reference BLAS")
