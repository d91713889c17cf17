"""Fakes for fast unit tests; end-to-end tests use the real drivers, these never stand in for them.

* :class:`FakeInst`: an Instance that records every command and answers from a table (unit tests of
  workload modules), with :func:`context` around it;
* :class:`FakeDriver`: a whole environment kind, ``fake``, whose instances run commands on the host
  in a private directory, with knobs to be unavailable, slow, fail to start or die mid-run. It is
  registered in ``isobench.drivers.KINDS`` only inside :func:`registered` (the ``fake_driver``
  fixture of conftest.py), so the cell runner can be tested without root, containers or guests.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

from isobench import drivers
from isobench.drivers.base import NAME_PREFIX, Availability, Driver, Endpoint, Instance, Limits
from isobench.errors import InstanceError
from isobench.schematypes import number
from isobench.workloads.base import Context


class FakeInst(Instance):
    """Records every command (``calls``, with stdin in ``inputs``); answers by the first key found in
    the command line. An answer may be a list (one per call, the last repeats) or an exception."""

    def __init__(self, answers=(), bind="10.9.8.7", port_offset=0):
        super().__init__("fake")
        self.answers, self.bind, self.port_offset = list(answers), bind, port_offset
        self.calls, self.inputs = [], []

    def _exec(self, argv, timeout, input):
        line = " ".join(argv)
        self.calls.append(line)
        self.inputs.append(input)
        for key, rc, out in self.answers:
            if key in line:
                if isinstance(out, list):
                    out = out.pop(0) if len(out) > 1 else out[0]
                if isinstance(out, Exception):
                    raise out
                return rc, out.encode(), b""
        return 0, b"", b""

    def endpoint(self, port):
        return Endpoint(self.bind, port + self.port_offset)

    @property
    def bind_address(self):
        return self.bind

    def _teardown(self):
        pass


def context(inst: Instance, client: Instance | Callable[[], Instance] | None = None, *,
            cache_dir: Path = Path("/x"), facts: dict | None = None) -> Context:
    """A workload's Context around fakes: ``ctx.client()`` returns ``client`` (an instance, or what a
    callable makes, e.g. ``lambda: pytest.fail("no client")``; default: a fresh FakeInst each call);
    ``facts`` is the dict prepare() fills (a new one by default)."""
    if client is None:
        make = FakeInst
    elif isinstance(client, Instance):
        def make():
            return client
    else:
        make = client
    return Context(inst=inst, client=make, cache_dir=cache_dir, facts={} if facts is None else facts)


# -- a fake environment kind ---------------------------------------------------------------------
class HostDirInstance(Instance):
    """An instance of the fake kind: commands run on the host (as the test's user) with a private
    directory as working directory and ``$HOME``; ``$DATA`` is its data directory. Knobs (driver
    options) make it slow or kill it mid-run: once dead, every command exits 137 ("Killed"),
    ``alive()`` is False and its servers are gone. ``stop()`` kills what ``spawn`` started."""

    def __init__(self, name: str, base: Path, *, limits: Limits, slow_s: float = 0.0, die_after: int | None = None,
                 die_on: str | None = None):
        super().__init__(name)
        self.base, self.data = base, base / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.limits, self.slow_s, self.die_after, self.die_on = limits, slow_s, die_after, die_on
        #: every command run so far (argv joined), and the servers spawn() started (tag -> Popen)
        self.calls: list[str] = []
        self.servers: dict[str, subprocess.Popen] = {}
        self.dead = False
        self._cpu0 = _children_cpu_s()

    def _die(self) -> None:
        self.dead = True
        self._kill_servers()

    def _exec(self, argv, timeout, input):
        line = " ".join(argv)
        self.calls.append(line)
        if (self.die_after is not None and len(self.calls) >= self.die_after) or (self.die_on and self.die_on in line):
            self._die()
        if self.dead:
            return 137, b"", b"Killed\n"
        env = ["/usr/bin/env", "-C", str(self.base), f"HOME={self.base}", f"DATA={self.data}"]
        slow = ["/bin/sh", "-c", 'sleep "$0"; exec "$@"', str(self.slow_s)] if self.slow_s > 0 else []
        return self._host_exec([*env, *slow, *argv], timeout, input, argv[0])

    def spawn(self, argv, *, tag):
        if self.dead:
            raise InstanceError(f"start {tag} in {self.name}: the instance is gone")
        with open(self.base / f"{tag}.log", "wb") as out:
            self.servers[tag] = subprocess.Popen(list(argv), cwd=self.base, stdin=subprocess.DEVNULL, stdout=out,
                                                 stderr=subprocess.STDOUT, start_new_session=True)

    def endpoint(self, port):
        return Endpoint("127.0.0.1", port)

    @property
    def bind_address(self):
        return "127.0.0.1"

    def alive(self):
        return not self.dead

    def cpu_seconds(self):
        """CPU seconds of the commands this test process has run and reaped since the start (a
        counter that only grows; other instances' commands count too)."""
        return _children_cpu_s() - self._cpu0

    def describe(self):
        """What the instance "sees": exactly its limits (so check_resources passes)."""
        return {"nproc": self.limits.cpus, "mem_mib": self.limits.memory_mib, "kernel": os.uname().release,
                "cpu_model": "fake CPU", "cgroup_mem": "max"}

    def _kill_servers(self) -> None:
        for proc in self.servers.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def _teardown(self):
        self._kill_servers()
        shutil.rmtree(self.base, ignore_errors=True)


def _children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


class FakeDriver(Driver):
    """The ``fake`` kind: registered only by the ``fake_driver`` fixture (or ``registered()``),
    never in the pipeline. Instances live under ``paths.instances`` (a temporary directory in tests)
    and every instance started is kept in ``FakeDriver.started`` (the fixture empties it)."""

    kind = "fake"
    ORDER = 90
    OPTIONS = {
        "available": {"type": "boolean", "default": True, "description": "whether availability() says yes"},
        "reason": {"type": "string", "default": "fake: asked to be unavailable",
                   "description": "availability()'s reason when not available"},
        "required": {"type": "boolean", "default": False,
                     "description": "an unavailable environment is an error, not skipped"},
        "slow_s": number(0, default=0.0, description="seconds every command sleeps before running"),
        "die_after": {"type": ["integer", "null"], "minimum": 1, "default": None,
                      "description": "the instance dies while running its n-th command (null: never)"},
        "die_on": {"type": ["string", "null"], "default": None,
                   "description": "the instance dies while running a command whose line holds this (null: never)"},
        "start_error": {"type": ["string", "null"], "default": None,
                        "description": "start() raises InstanceError with this message (null: starts)"},
        "emulated": {"type": "boolean", "default": False, "description": "labelled emulated (as KVM under TCG)"},
        "held_mib": {"type": "integer", "minimum": 0, "default": 0,
                     "description": "host memory an instance holds while alive (as a guest's RAM)"},
    }
    started: ClassVar[list[HostDirInstance]] = []

    def availability(self):
        if not self.option("available"):
            return Availability(False, self.option("reason"), required=self.option("required"))
        return Availability(True, labels={"accel": "fake", "emulated": self.option("emulated")})

    def held_memory_mib(self):
        return self.option("held_mib")

    def start(self, name):
        if self.option("start_error"):
            raise InstanceError(f"environment {self.env}: {self.option('start_error')}")
        base = self.paths.instance_dir(name)
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
        (base / MARKER).touch()
        inst = HostDirInstance(name, base, limits=self.limits, slow_s=self.option("slow_s"),
                               die_after=self.option("die_after"), die_on=self.option("die_on"))
        FakeDriver.started.append(inst)
        return inst

    @classmethod
    def cleanup_stale(cls, paths):
        removed = []
        if paths.instances.exists():
            for d in sorted(paths.instances.glob(f"{NAME_PREFIX}*")):
                if (d / MARKER).exists():
                    shutil.rmtree(d)
                    removed.append(f"fake instance {d.name}")
        return removed


#: the file that marks an instance directory as the fake kind's
MARKER = ".fake-instance"


@contextlib.contextmanager
def registered() -> Iterator[type[FakeDriver]]:
    """The fake kind in isobench.drivers.KINDS, and host-side clients made by it too (so a cell's
    ``ctx.client()`` needs no root), for the duration of the block only: registering it for good
    would put it into the generated config schema."""
    saved = drivers.HOST_CLIENT
    drivers.KINDS["fake"] = FakeDriver
    drivers.HOST_CLIENT = FakeDriver
    FakeDriver.started.clear()
    try:
        yield FakeDriver
    finally:
        drivers.KINDS.pop("fake", None)
        drivers.HOST_CLIENT = saved
        for inst in FakeDriver.started:
            inst.stop()
        FakeDriver.started.clear()
