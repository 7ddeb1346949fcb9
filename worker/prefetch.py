"""Claiming ahead: which functions are short enough that a slot claims several of their tasks at once.

A slot whose last claim found work (the queue is busy) claims up to ``prefetch`` tasks in one
go (``TaskStore.claim_ahead``), but only tasks of functions this worker measured as short, so a
task claimed ahead waits in the worker about ``WINDOW_S`` at most; an idle worker's claim stays
one task, so publish-to-start is not slowed. Tasks claimed ahead hold leases like running ones
(the heartbeat renews them); one a slot cannot start (the worker drains, cools down, is full) is
handed back unstarted (attempt ``released``), which is not a failure.
"""
from __future__ import annotations

import threading

#: A function is short when its mean run time here is at most this ...
SHORT_S = 0.05
#: ... over at least this many runs (the mean weighs recent runs most).
MIN_RUNS = 3
WEIGHT = 0.2
#: How long the tasks claimed ahead of one slot should take together, at most.
WINDOW_S = 0.25


class ShortFunctions:
    """Per-function run times measured on this worker, and how many tasks to claim ahead."""

    def __init__(self, prefetch: int):
        self.prefetch = prefetch
        self._mean: dict[str, float] = {}
        self._runs: dict[str, int] = {}
        self._lock = threading.Lock()

    def note(self, function: str, seconds: float) -> None:
        """One successful run's time; the first run of a function here is a cold start (it imports
        the code) and is not counted."""
        with self._lock:
            runs = self._runs.get(function, -1)
            self._runs[function] = runs + 1
            if runs >= 0:
                mean = self._mean.get(function, seconds)
                self._mean[function] = seconds if runs == 0 else (1 - WEIGHT) * mean + WEIGHT * seconds

    def ahead(self, function: str) -> tuple[int, list[str]]:
        """After claiming a task of ``function``: how many more to claim, and of which functions
        (0 when ``function`` itself is not known to be short)."""
        if self.prefetch <= 1:
            return 0, []
        with self._lock:
            short = {f: m for f, m in self._mean.items() if self._runs[f] >= MIN_RUNS and m <= SHORT_S}
        if function not in short:
            return 0, []
        slowest = max(short.values())
        return min(self.prefetch - 1, max(1, int(WINDOW_S / max(slowest, 1e-3)))), sorted(short)
