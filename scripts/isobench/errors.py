"""User-facing errors. Each carries one line: what is wrong and what to do about it."""


class BenchError(Exception):
    """Base class: str(err) is the single line shown to the user."""


class ConfigError(BenchError):
    """The configuration is invalid (names the key and what was expected)."""


class Unavailable(BenchError):
    """An environment cannot run on this host (with the reason and how to opt in)."""


class InstanceError(BenchError):
    """An instance failed to start, answer, or run a command."""


class ParseError(BenchError):
    """Tool output was truncated, garbled or reported a failure; no number is recorded."""
