"""A fake Instance for fast unit tests of workload modules: it records every command and answers
from a table. End-to-end tests use the real drivers; this one never stands in for them."""

from collections.abc import Callable
from pathlib import Path

from isobench.drivers.base import Endpoint, Instance
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
