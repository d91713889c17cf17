"""The real tool output in tests/fixtures/<kind>/, captured from runs on native and in an LXC
container on the bridge: good iterations, failed runs, and the parameters they ran with."""

from __future__ import annotations

import json
from pathlib import Path

from isobench.workloads import KINDS

FIXTURES = Path(__file__).parent / "fixtures"
#: good output of the kinds whose files are not named <env>-iter-<n>.out
_GOOD = {"compression": ("native.out", "lxc_bridge.out"),
         "fio": ("randread-native.json", "randread-lxc_bridge.json")}


def good(kind: str) -> list[Path]:
    """The output of complete, successful iterations."""
    names = _GOOD.get(kind)
    return [FIXTURES / kind / n for n in names] if names else sorted((FIXTURES / kind).glob("*-iter-*.out"))


def failed(kind: str) -> list[Path]:
    """The output of runs that failed (server unreachable, tool error, killed)."""
    return sorted((FIXTURES / kind).glob("*failed*"))


def defaults(kind: str) -> dict:
    return {k: v["default"] for k, v in KINDS[kind].PARAMS.items()}


def params(kind: str) -> dict:
    """The parameters the fixtures ran with: params.json, or the kind's defaults where there is none."""
    path = FIXTURES / kind / "params.json"
    return json.loads(path.read_text()) if path.exists() else defaults(kind)


def text(kind: str, name: str) -> str:
    return (FIXTURES / kind / name).read_text()
