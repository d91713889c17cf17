"""How a cell is measured, as one value that crosses the rule boundary (config -> run_round)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

#: how a round's cells are placed in time (isobench.cell)
ORDERS = ("interleaved", "sequential")


@dataclass(frozen=True)
class Measure:
    """How every cell is measured (a change re-measures every cell)."""
    iterations: int
    warmup_iterations: int
    settle_s: float = 0.0
    #: how a round's cells are placed in time: "interleaved" (instances alive together, measured
    #: iterations in blocks of one per environment) or "sequential" (one whole cell after another)
    order: str = "interleaved"

    def to_param(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_param(cls, param: dict[str, Any]) -> Measure:
        return cls(**param)     # an unknown key is an error, never dropped
