"""Task functions the worker tests run (importable as ``tests.task_functions:NAME``).

Each runs inside an executor child process, never in the test process.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def add(a, b):
    """Return a + b."""
    return a + b


def chatty(n=3):
    """Print to stdout and stderr, then return n."""
    for i in range(n):
        print(f"line {i} to stdout")
    print("a warning to stderr", file=sys.stderr)
    return n


def not_json():
    """Return a set, which is not JSON data."""
    return {1, 2, 3}


def crash(code=3):
    """Die without answering, like a segfault would."""
    sys.stdout.write("about to crash\n")
    sys.stdout.flush()
    os._exit(code)


def crash_once(marker):
    """Crash on the first call (creating ``marker``), succeed on the next ones."""
    path = Path(marker)
    if not path.exists():
        path.write_text(str(os.getpid()))
        os._exit(7)
    return "second time lucky"


def sleep_marked(marker, seconds=60.0):
    """Write our pid to ``marker`` (so a test knows the attempt started), then sleep."""
    Path(marker).write_text(str(os.getpid()))
    time.sleep(float(seconds))
    return "woke up"


def pid():
    """The executor child's pid."""
    return os.getpid()


def sleep_once(marker, seconds=60.0):
    """The first call writes ``marker`` (our pid) and sleeps; later calls return at once."""
    path = Path(marker)
    if path.exists():
        return "done on retry"
    path.write_text(str(os.getpid()))
    time.sleep(float(seconds))
    return "woke up"
