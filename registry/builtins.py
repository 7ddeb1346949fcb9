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


def file_info(path):
    """The name, size and sha256 of a file (such as a ``{"__data__": id}`` argument's local copy)."""
    import hashlib
    from pathlib import Path

    path = Path(path)
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"name": path.name, "size": path.stat().st_size, "sha256": digest.hexdigest()}


BUILTINS = {f.__name__: f for f in (noop, echo, sleep, fail, cpu_burn, file_info)}
BUILTIN_VERSION = "builtin"
