"""How the thin scripts in scripts/ run a step: log to the rule's log, one clear line on failure."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from .errors import BenchError
from .util import setup_logging

log = logging.getLogger("isobench")


def run_step(step: Callable[[], object], logfile: str | None) -> None:
    setup_logging(logfile)
    try:
        step()
    except BenchError as e:
        log.error("%s", e)
        sys.exit(1)
    except Exception:
        log.exception("unexpected failure (a bug: please report it with this log)")
        sys.exit(2)
