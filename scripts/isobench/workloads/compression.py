"""Compression (the paper's PXZ test): ``xz -T<threads> -<level>`` of a deterministic text corpus.

The corpus is generated on the host from a seed (Zipf-distributed words, so it compresses like
text), cached, and copied into /data before the warm-up. Output goes to /dev/null and the input is
read once before measuring, so it is cached in RAM as in the paper. The time is taken inside the
environment around xz alone, so the harness adds nothing to the measured interval.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..drivers.base import DATA_DIR
from ..errors import ParseError
from ..schematypes import integer
from ..util import atomic_write_bytes
from .base import Context, Metric, Sample, Workload, run_shell

CORPUS = f"{DATA_DIR}/corpus.txt"
STATUS = re.compile(r"^isobench-xz exit=(?P<rc>\d+) ", re.M)
RESULT = re.compile(r"^isobench-xz exit=(?P<rc>\d+) bytes=(?P<bytes>\d+) start_ns=(?P<s>\d+) end_ns=(?P<e>\d+)$",
                    re.M)


def make_corpus(path: Path, size_mib: int, seed: int) -> str:
    """Write a deterministic pseudo-text corpus of exactly size_mib MiB; return its sha256."""
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"etaoinshrdlcumwfgypbvkjxqz", dtype=np.uint8)
    vocab = []
    for n in rng.integers(2, 12, size=30000):
        vocab.append(bytes(letters[np.minimum(rng.geometric(0.18, size=n) - 1, 25)]))
    target = size_mib * 1024 * 1024
    chunks, total, digest = [], 0, hashlib.sha256()
    while total < target:
        idx = np.minimum(rng.zipf(1.15, size=200_000) - 1, len(vocab) - 1)
        words = [vocab[i] for i in idx]
        for j in range(11, len(words), 12):
            words[j] += b"\n"
        chunk = b" ".join(words)[: target - total]
        chunks.append(chunk)
        digest.update(chunk)
        total += len(chunk)
    atomic_write_bytes(path, b"".join(chunks))
    return digest.hexdigest()


class Compression(Workload):
    kind = "compression"
    CATEGORY = "cpu"
    PARAMS = {
        "threads": integer(1, default=2, description="xz -T threads (the paper: one per hardware thread)"),
        "level": integer(0, 9, default=2, description="xz compression level (the paper: 2)"),
        "corpus_mib": integer(1, default=64,
                              description="size of the generated corpus in MiB (the paper: 1 GB enwik9)"),
        "seed": integer(0, default=1, description="corpus generator seed"),
    }
    METRICS = {"throughput": Metric("MB/s", True, "input bytes compressed per second (10^6 B/s)", primary=True)}
    TOOLS = (("xz", "--version"),)
    VERSION_ARGV = ("xz", "--version")

    def prepare(self, ctx: Context) -> None:
        size, seed = self.params["corpus_mib"], self.params["seed"]
        host_copy = ctx.cache_dir / f"corpus-{size}MiB-seed{seed}.txt"
        sums = host_copy.with_suffix(".sha256")
        if not (host_copy.exists() and sums.exists()):
            sums.parent.mkdir(parents=True, exist_ok=True)
            sums.write_text(make_corpus(host_copy, size, seed))
        ctx.inst.copy_in(host_copy, CORPUS)
        want = sums.read_text().strip()
        got = ctx.inst.exec(["sha256sum", CORPUS], timeout=600).check("checksum corpus").stdout.split()[0]
        if got != want:
            raise ParseError(f"corpus copied into {ctx.inst.name} is corrupt (sha256 {got} != {want})")
        ctx.facts["corpus_sha256"] = want

    def command(self) -> str:
        p = self.params
        return (f"s=$(date +%s%N); xz -T{p['threads']} -{p['level']} -c {CORPUS} >/dev/null; rc=$?; "
                f"e=$(date +%s%N); echo \"isobench-xz exit=$rc bytes=$(stat -c %s {CORPUS}) "
                f"start_ns=$s end_ns=$e\"")

    def run_iteration(self, ctx: Context) -> str:
        return run_shell(ctx.inst, self.command(), timeout=3600)

    @classmethod
    def parse(cls, raw: str, params: dict[str, Any]) -> list[Sample]:
        status = STATUS.search(raw)
        if status and int(status["rc"]) != 0:
            raise ParseError(f"compression: xz exited with {status['rc']}")
        m = RESULT.search(raw)
        if not m:
            raise ParseError("compression: no result line in the output (truncated or failed run)")
        seconds = (int(m["e"]) - int(m["s"])) / 1e9
        if seconds <= 0 or int(m["bytes"]) == 0:
            raise ParseError(f"compression: impossible timing ({seconds} s for {m['bytes']} bytes)")
        return [Sample("throughput", int(m["bytes"]) / 1e6 / seconds)]

    def describe(self) -> str:
        p = self.params
        return f"xz -T{p['threads']} -{p['level']} of a {p['corpus_mib']} MiB text corpus to /dev/null"
