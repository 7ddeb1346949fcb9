"""The built-in functions, always registered as version ``builtin``: smoke tests, health
checks and benchmarks. They run in the executor's child process like any other function."""
from __future__ import annotations

import time


def noop():
    """Do nothing; return None."""
    return None


def echo(value=None):
    """Return the argument unchanged."""
    return value


def sleep(seconds: float = 1.0):
    """Sleep, then return the seconds slept."""
    time.sleep(float(seconds))
    return seconds


def fail(message: str = "failed on purpose"):
    """Raise RuntimeError(message)."""
    raise RuntimeError(message)


def cpu_burn(ms: float = 100):
    """Spin one core for ``ms`` milliseconds; return the loop count."""
    end = time.perf_counter() + float(ms) / 1000
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


BUILTINS = {f.__name__: f for f in (noop, echo, sleep, fail, cpu_burn)}
BUILTIN_VERSION = "builtin"
