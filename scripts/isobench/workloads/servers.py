"""Shared by the workloads with a server inside the environment and a client on the host
(net_bandwidth, net_latency, redis, mysql): starting the server, and the raw-output framing.

An iteration's raw output is one marked part per client run (:func:`record`: a ``### isobench ...
exit=N`` line, the command line, the output) and the end marker (:func:`transcript`); the parser
takes it apart again with :func:`marked_runs`, which refuses output without the end marker."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Sequence

from ..drivers.base import Instance
from ..errors import InstanceError, ParseError
from .base import parser_helper

#: the last line of every iteration's raw output: without it the output was cut off
END = "### isobench end\n"


def lines(text: str) -> str:
    """Tool output as complete lines, so the next marker always starts a line."""
    return text if not text or text.endswith("\n") else text + "\n"


def record(header: str, argv: Sequence[str], rc: int, *outputs: str) -> str:
    """One client run's part of the raw output: ``### isobench {header} exit={rc}``, the command
    line, then each of ``outputs`` (stdout, stderr, ...) as complete lines."""
    return f"### isobench {header} exit={rc}\n$ {shlex.join(argv)}\n" + "".join(lines(o) for o in outputs)


def transcript(parts: Iterable[str]) -> str:
    """An iteration's raw output: its parts, then the end marker."""
    return "".join(parts) + END


def start_server(inst: Instance, argv: Sequence[str], *, tag: str, port: int, proto: str = "tcp",
                 timeout: float = 60.0) -> int:
    """Start a server inside ``inst`` and wait until *that process* listens on ``port``.

    A listener on the port that belongs to another process (a leftover, another user of the host
    network) is not accepted: the check matches the pid that ``spawn`` recorded. Returns the pid.
    """
    inst.spawn(list(argv), tag=tag)
    flag = "t" if proto == "tcp" else "u"
    script = (f"p=$(cat /tmp/{tag}.pid); end=$(( $(date +%s) + {int(timeout)} )); "
              f"while [ $(date +%s) -lt $end ]; do "
              f"kill -0 $p 2>/dev/null || {{ echo \"exited: $(tail -n 3 /tmp/{tag}.log | tr '\\n' ' ')\"; exit 1; }}; "
              f"ss -Hl{flag}np \"sport = :{port}\" | grep -q \"pid=$p,\" && {{ echo $p; exit 0; }}; "
              f"sleep 0.1; done; echo \"not listening on port {port} after {int(timeout)} s\"; exit 1")
    res = inst.sh(script, timeout=timeout + 30)
    if res.returncode != 0:
        raise InstanceError(f"{tag} in {inst.name}: {res.stdout.strip()[-300:]}")
    return int(res.stdout.split()[-1])



@parser_helper
def require_end(kind: str, raw: str) -> None:
    """Refuse output that does not end with the end marker (truncated or cut off)."""
    if not raw.endswith(END):
        raise ParseError(f"{kind}: output does not end with the end marker (truncated or cut off)")


@parser_helper
def marked_runs(kind: str, raw: str, mark: re.Pattern[str]) -> list[tuple[re.Match[str], str]]:
    """The runs of a complete raw output (see :func:`require_end`): each marker line that ``mark``
    matches, with the text after it up to the next marker (or the end)."""
    require_end(kind, raw)
    marks = list(mark.finditer(raw))
    return [(m, raw[m.end():marks[i + 1].start() if i + 1 < len(marks) else len(raw)]) for i, m in enumerate(marks)]
