"""The measurement order of a round, and the seeded generators behind every random draw.

Kept apart from :mod:`isobench.stats` and :mod:`isobench.rounds` (scipy, pandas) because the
workflow computes the order of every cell while it is parsed: a no-op `snakemake all` must not pay
for importing them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np


def group_rng(seed: int, *key: object) -> np.random.Generator:
    """A generator for one group: seeded by the run seed and a stable hash of the group's key.

    Python's hash() is salted per process, so the key is hashed with sha256 instead.
    """
    digest = hashlib.sha256("\x1f".join(map(str, key)).encode()).digest()
    words = [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]
    return np.random.default_rng(np.random.SeedSequence([seed, *words]))


def round_order(envs: Iterable[str], workload: str, rnd: int, seed: int) -> list[str]:
    """The environments of one round in their measurement order: a permutation drawn from
    (seed, workload, round), so every round differs and a rerun reproduces it."""
    envs = sorted(envs)
    perm = group_rng(seed, "round-order", workload, rnd).permutation(len(envs))
    return [envs[i] for i in perm]


def block_order(envs: Iterable[str], workload: str, rnd: int, block: int, seed: int) -> list[str]:
    """The environments of one block of an interleaved round (one measured iteration each) in their
    order: a permutation drawn from (seed, workload, round, block)."""
    envs = sorted(envs)
    perm = group_rng(seed, "block-order", workload, rnd, block).permutation(len(envs))
    return [envs[i] for i in perm]
