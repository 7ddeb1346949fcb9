"""Killing an attempt's whole process tree: its executor child and everything it started.

A task may start processes (``multiprocessing.Pool``, ``ProcessPoolExecutor``, ``subprocess``),
and those may start more, leave their process group, or call ``setsid``. The executor child
makes itself a *child subreaper* (Linux ``PR_SET_CHILD_SUBREAPER``), so an orphaned
grandchild is re-parented to it instead of to init and stays in its tree; ``kill_tree``
stops the root (so it forks no more), SIGKILLs every descendant psutil finds and every
process group they lead, repeats until none is left, then kills the root.
"""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import time

import psutil

log = logging.getLogger("suanwang.worker.proctree")

PR_SET_CHILD_SUBREAPER = 36
MAX_ROUNDS = 20


def become_subreaper() -> bool:
    """Make orphaned descendants of this process its children (Linux); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _kill(proc: psutil.Process, sig: int) -> None:
    try:
        if os.getpgid(proc.pid) == proc.pid:  # a group leader (setsid, start_new_session): its group too
            os.killpg(proc.pid, sig)
        proc.send_signal(sig)
    except (psutil.Error, OSError):
        pass


def cpu_seconds(process: psutil.Process | None) -> float | None:
    """CPU seconds (user + system) a process and the children it waited for have used; None when gone.

    The caller keeps the ``psutil.Process``: reading it again costs one /proc file, a new one two.
    """
    if process is None:
        return None
    try:
        t = process.cpu_times()
    except psutil.Error:
        return None
    return t.user + t.system + t.children_user + t.children_system


def has_children(pid: int) -> bool:
    """Whether ``pid`` has child processes, from ``/proc/<pid>/task/*/children`` (microseconds, where
    a psutil walk of every process takes milliseconds); True when the kernel does not say."""
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                if f.read().strip():
                    return True
        return False
    except OSError:
        return True


def kill_descendants(pid: int, sig: int = signal.SIGKILL) -> int:
    """SIGKILL everything below ``pid`` until nothing is left; returns how many were signalled."""
    if not has_children(pid):  # the common case: a subreaper without children has no descendants
        return 0
    killed: set[int] = set()
    for _ in range(MAX_ROUNDS):
        found = [p for p in _descendants(pid) if p.pid not in killed or _alive(p)]
        if not found:
            break
        for proc in found:
            _kill(proc, sig)
            killed.add(proc.pid)
        # Not reaped here: whoever started them (subprocess, multiprocessing) waits on them and
        # must see them die; an unreaped zombie does not run.
        time.sleep(0.02)
    return len(killed)


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def kill_tree(pid: int, sig: int = signal.SIGKILL) -> None:
    """Kill ``pid`` (the executor child, leader of its own group) and all its descendants."""
    try:
        os.kill(pid, signal.SIGSTOP)  # no new forks while its tree is taken apart
    except OSError:
        pass
    kill_descendants(pid, sig)
    for target in (lambda: os.killpg(pid, sig), lambda: os.kill(pid, sig)):
        try:
            target()
        except OSError:
            pass
