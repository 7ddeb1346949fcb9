"""Task functions for end-to-end and chaos tests (importable as tests.chaos_functions:NAME).

Worker processes started by tests/procs.py carry CHAOS_WORKER=<worker name> in their
environment, which these functions use to behave differently on one named worker.
"""
import os
import time
import uuid
from pathlib import Path


def whoami(seconds: float = 0.0):
    """Sleep, then return the name of the worker that ran this attempt."""
    time.sleep(seconds)
    return os.environ.get("CHAOS_WORKER", "?")


def answer(x, liar: str = "liar"):
    """The right answer everywhere except on the worker named ``liar``."""
    return {"value": -1 if os.environ.get("CHAOS_WORKER") == liar else x}


def random_value():
    """A different value on every run: redundant runs can never agree."""
    return uuid.uuid4().hex


def pid_sleep(path: str, seconds: float = 60.0):
    """Write this process's pid to ``path``, then sleep (to see that a cancel kills it)."""
    Path(path).write_text(str(os.getpid()))
    time.sleep(seconds)
    return "slept"


def stamped_sleep(folder: str, seconds: float = 30.0):
    """Sleep, writing ``time.time()`` to ``folder/<worker>-<pid>`` every 20 ms: the file's first and
    last lines say when this execution started and when it last ran (killed or not)."""
    path = Path(folder) / f"{os.environ.get('CHAOS_WORKER', '?')}-{os.getpid()}"
    end = time.monotonic() + seconds
    with open(path, "a") as out:
        while time.monotonic() < end:
            out.write(f"{time.time():.3f}\n")
            out.flush()
            time.sleep(0.02)
    return os.environ.get("CHAOS_WORKER", "?")


def tally(folder: str, n: int, seconds: float = 0.05):
    """Note one execution of task ``n`` (a line in this process's own file), then sleep: the files
    count every execution, also those whose claim a failover rolled back."""
    with open(Path(folder) / f"{os.environ.get('CHAOS_WORKER', '?')}-{os.getpid()}", "a") as out:
        out.write(f"{n}\n")
    time.sleep(seconds)
    return n


def broken_on(bad: str, seconds: float = 0.0):
    """Fails on the worker named ``bad`` (a broken machine), succeeds everywhere else."""
    time.sleep(seconds)
    if os.environ.get("CHAOS_WORKER") == bad:
        raise RuntimeError(f"this machine ({bad}) is broken")
    return os.environ.get("CHAOS_WORKER", "?")


def visible_gpus(seconds: float = 0.0):
    """The GPUs this attempt may see (CUDA_VISIBLE_DEVICES), after sleeping."""
    time.sleep(seconds)
    return os.environ.get("CUDA_VISIBLE_DEVICES")


def overlap(path: str, seconds: float = 0.5):
    """Appends (start, end) of this run to a file: the test counts how many ran at once."""
    start = time.time()
    time.sleep(seconds)
    with open(path, "a") as f:
        f.write(f"{start} {time.time()}\n")
    return os.environ.get("CHAOS_WORKER", "?")
