"""The executor child's plumbing: its lifeline to the daemon, and its output redirected to a file.

``read_tail`` is used on both sides: the child sends the tail with its answer, the daemon reads
it from the file while the attempt runs (the heartbeat's live log lines) or after it died.
"""
from __future__ import annotations

import os
import signal
import sys

from worker import proctree

#: Bytes of stdout/stderr kept per attempt.
LOG_TAIL = 4000


def watch_lifeline(lifeline) -> None:
    """Block until the daemon's end of ``lifeline`` closes (it exited or was killed), then SIGKILL
    this child's process group: an orphaned attempt must not run on after its lease is gone.
    (The child's parent is the fork server, which outlives the daemon while children live.)"""
    try:
        lifeline.recv()
    except BaseException:
        pass
    proctree.kill_descendants(os.getpid())  # also grandchildren that left the process group
    os.killpg(0, signal.SIGKILL)


def redirect_output(log_path: str) -> int:
    fd = os.open(log_path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.close(null)
    sys.stdout = open(1, "w", encoding="utf-8", errors="replace", buffering=1, closefd=False)
    sys.stderr = open(2, "w", encoding="utf-8", errors="replace", buffering=1, closefd=False)
    return 1


def read_tail(fd: int, limit: int = LOG_TAIL) -> str:
    size = os.fstat(fd).st_size
    if size == 0:
        return ""
    start = max(0, size - limit)
    data = os.pread(fd, size - start, start)
    text = data.decode("utf-8", errors="replace")
    return ("…" + text) if start else text
