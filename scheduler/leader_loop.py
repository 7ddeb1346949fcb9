"""The leader's periodic jobs (housekeeping, schedules, notifications) on one loop abstraction.

A ``Job`` is a name, an interval and a function that does one round. A ``JobRunner`` runs
each job in a daemon thread of its own: a round, then a wait of ``interval_s`` (or of the
seconds the round returns, when it knows better: a sender with more work says 0, the
schedules say when the next one is due); an error is logged and the job backs off
(doubling, up to ``backoff_max_s``), then tries again. A round gets the runner's stop event,
so a long one (a change stream) ends when the runner stops.

``Leader`` runs the jobs added to it (``add``) only while this process holds the
``scheduler`` lease (``fsm.store.locks``, timed by the MongoDB server's clock): it checks
every third of the lease, starts the runner when it gains the lease, and stops it when the
lease is lost, given back, or about to expire without a renewal. Other servers take over
when the lease expires. Every job must be idempotent: at a hand-over two processes may run
one round each.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Callable

from fsm.store import Store
from fsm.store.driver import StoreError

log = logging.getLogger("suanwang.leader")
#: The lease the leader holds.
LOCK = "scheduler"


@dataclass(frozen=True)
class Job:
    """A named periodic job; ``run(stop)`` does one round and may return the seconds to wait."""

    name: str
    interval_s: float
    run: Callable[[threading.Event], float | None]
    #: Longest wait after repeated failures.
    backoff_max_s: float = 30.0
    #: Threads running this job side by side (senders).
    threads: int = 1
    #: Set by this process when the job has new work (a schedule created here): the wait ends early.
    wake: threading.Event | None = None


class JobRunner:
    """Runs jobs in daemon threads until ``stop()``; ``guard()`` False pauses every job."""

    def __init__(self, jobs: list[Job], guard: Callable[[], bool] = lambda: True):
        self.jobs = list(jobs)
        self.guard = guard
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> "JobRunner":
        for job in self.jobs:
            for i in range(job.threads):
                suffix = f"-{i}" if job.threads > 1 else ""
                thread = threading.Thread(target=self._loop, args=(job,), name=f"suanwang-{job.name}{suffix}",
                                          daemon=True)
                thread.start()
                self._threads.append(thread)
        return self

    def _loop(self, job: Job) -> None:
        failures = 0
        while not self.stopping.is_set():
            if not self.guard():
                self.stopping.wait(min(job.interval_s, 0.5))
                continue
            try:
                asked = job.run(self.stopping)
                failures = 0
                delay = job.interval_s if asked is None else max(0.0, min(asked, job.interval_s))
            except Exception as exc:  # noqa: BLE001 - a job outlives any one failure
                failures += 1
                delay = min(job.interval_s * 2 ** failures, max(job.backoff_max_s, job.interval_s))
                if isinstance(exc, StoreError):
                    log.warning("%s: MongoDB error (%s); next try in %gs", job.name, str(exc).split(",")[0][:200],
                                delay)
                else:
                    log.exception("%s failed; next try in %gs", job.name, delay)
            if delay > 0:
                self._wait(job, delay)

    def _wait(self, job: Job, delay: float) -> None:
        if job.wake is None:
            self.stopping.wait(delay)
            return
        job.wake.wait(delay)  # stop() sets it too
        job.wake.clear()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        for job in self.jobs:
            if job.wake is not None:
                job.wake.set()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)
        self._threads = []


class Leader:
    """Holds the scheduler lease and runs its jobs while it does.

    ``start()`` checks at once, then every ``lease_s / 3`` in a daemon thread (``step()``);
    ``stop()`` stops the jobs and gives the lease back. Tests call ``step()`` themselves.
    """

    def __init__(self, store: Store, *, lease_s: float = 10.0, lock: str = LOCK):
        self.store = store
        self.lease_s = lease_s
        self.lock = lock
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.jobs: list[Job] = []
        #: The running jobs while this process leads, else None.
        self.runner: JobRunner | None = None
        self._valid_until = 0.0  # monotonic time until which our last renewal surely holds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, *jobs: Job) -> None:
        """Run ``jobs`` whenever this process leads (from the next gain of the lease)."""
        names = {j.name for j in self.jobs}
        for job in jobs:
            if job.name in names:
                raise ValueError(f"a leader job named {job.name!r} exists already")
            names.add(job.name)
            self.jobs.append(job)

    @property
    def is_leader(self) -> bool:
        return self.runner is not None

    def lease_valid(self) -> bool:
        """Whether our last renewal surely still holds (jobs pause when it does not)."""
        return time.monotonic() < self._valid_until

    # ------------------------------------------------------------------ lease
    def try_acquire(self) -> bool:
        asked = time.monotonic()
        held = self.store.locks.acquire(self.lock, self.holder, self.lease_s)
        if held:  # stop before the lease can expire on the server, even if renewals start failing
            self._valid_until = asked + self.lease_s * 2 / 3
        return held

    def release(self) -> None:
        try:
            self.store.locks.release(self.lock, self.holder)
        except StoreError as exc:
            log.warning("could not release the scheduler lease: %s", str(exc).split(",")[0][:200])
        self._valid_until = 0.0

    # ------------------------------------------------------------------- loop
    def step(self) -> bool:
        """One check: gain, keep or lose leadership; returns whether this process now leads."""
        try:
            held = self.try_acquire()
        except StoreError as exc:
            held = self.lease_valid()
            log.warning("scheduler lease check failed (%s); %s", str(exc).split(",")[0][:200],
                        "still within the lease" if held else "not leading")
        if held and not self.is_leader:
            self.runner = JobRunner(self.jobs, guard=self.lease_valid).start()
            log.info("this server (%s) runs the periodic jobs: %s", self.holder,
                     ", ".join(j.name for j in self.jobs) or "none")
        elif not held and self.is_leader:
            log.warning("lost the scheduler lease; stopping periodic jobs here")
            self._stop_jobs()
        return self.is_leader

    def _stop_jobs(self) -> None:
        runner, self.runner = self.runner, None
        if runner is not None:
            runner.stop()

    def start(self) -> None:
        """Check at once, then keep checking in a daemon thread."""
        self._stop.clear()
        self.step()
        self._thread = threading.Thread(target=self._loop, name="suanwang-leader", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            try:
                self.step()
            except Exception:  # noqa: BLE001 - the loop must outlive any one failure
                log.exception("leader step failed")

    def stop(self) -> None:
        """Stop checking, stop the jobs, give the lease back."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.lease_s)
            self._thread = None
        self._stop_jobs()
        self.release()
