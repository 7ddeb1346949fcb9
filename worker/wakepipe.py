"""A self-pipe the daemon's main thread sleeps on, so it idles without polling.

A signal handler may only set a flag (taking a lock there can deadlock the main thread), and
a flag alone is seen only at the next poll. With ``signal.set_wakeup_fd`` the interpreter
writes a byte here when a signal arrives, so the main thread's ``select`` returns at once;
other threads ``poke`` it (a stop, a slot that ended) the same way.
"""
from __future__ import annotations

import os
import select


class WakePipe:
    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)  # set_wakeup_fd requires it; a full pipe is already a wake-up

    def fileno(self) -> int:
        """The end to give ``signal.set_wakeup_fd``."""
        return self._write

    def poke(self) -> None:
        try:
            os.write(self._write, b"\0")
        except (BlockingIOError, OSError):  # full (already woken) or closed (shutting down)
            pass

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds`` or until poked; True when poked."""
        try:
            ready, _, _ = select.select([self._read], [], [], max(0.0, seconds))
        except (OSError, ValueError):  # closed under us
            return False
        if not ready:
            return False
        try:
            while os.read(self._read, 4096):
                pass
        except (BlockingIOError, OSError):
            pass
        return True

    def close(self) -> None:
        for fd in (self._read, self._write):
            try:
                os.close(fd)
            except OSError:
                pass
