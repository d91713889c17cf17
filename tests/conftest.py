"""Shared test helpers: the project root, the default config, and a loader for config variants."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def default_raw() -> dict:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def variant(raw: dict, **changes) -> dict:
    """A copy of a raw config with dotted keys changed (value None deletes the key)."""
    out = copy.deepcopy(raw)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return out
