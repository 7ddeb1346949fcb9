"""The worker daemon: claim a task per free slot, run it in that slot's child, record the end.

Split by job: this module holds the lifecycle (start, signals, drain, close), the whoami it
reports and the interface the heartbeat uses; ``worker.slots`` the slot loops and idle waits;
``worker.attempts`` running one attempt; ``worker.recorder`` writing how it ended.

One thread per slot (claim -> resolve -> run in the slot's child -> finish), so MongoDB
round trips of different slots overlap and a worker never holds more tasks than free slots.
A heartbeat thread (``worker.heartbeat``) keeps the leases and the whoami fresh and stops
attempts that were cancelled or lost. Idle slots block on the store's wake-up signals (one
of them tails the capped collection, the others wait on it), with an exponential fallback
poll capped at ``poll_max_s``.

SIGTERM/SIGINT drain: no new claims; running attempts get ``drain_timeout_s`` to finish,
then are killed and recorded as lost (so they are retried at once, not after their lease).
MongoDB going away is survived: every loop logs once, backs off and goes on; an outcome
already computed is retried until the store accepts or refuses it.

Code that starts a ``Daemon`` from a script needs the ``if __name__ == "__main__":`` guard:
the executor's children are started the ``multiprocessing`` way.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
import signal
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


from fsm.capacity import Capacity, Gpu
from fsm.errors import Conflict, ConfigError
from fsm.states import AttemptState
from fsm.store import Claimant, Store, database
from fsm.store.access import ensure_indexes_if_allowed
from fsm.store.driver import StoreError as PyMongoError
from fsm.store.workers import DRAINING, OFFLINE
from registry.builtins import BUILTINS
from registry.resolver import make_resolver
from worker import stats
from worker.config import WorkerConfig
from worker.datacache import DataCache
from worker.attempts import AttemptRunner
from worker.executor import Executor
from worker.fence import Fence
from worker.group_commit import GroupCommit
from worker.health import HealthTracker
from worker.heartbeat import Heartbeat
from worker.live import LiveReporter
from worker.prefetch import ShortFunctions
from worker.recorder import RETRY_MAX_S, RETRY_START_S, Recorder
from worker.quota_room import QuotaRoom
from worker.requests import ChildRequests
from worker.slots import FINISH_DEPTH, Slots
from worker.trouble import Trouble
from worker.wakepipe import WakePipe

log = logging.getLogger("suanwang.worker")

A = AttemptState
#: The main thread's longest sleep; signals, stop() and ending slots wake it sooner.
MAIN_WAKE_S = 5.0


class Daemon(Slots, AttemptRunner, Recorder):
    """A worker daemon. ``run()`` until stopped; ``run_once()`` is one iteration (tests)."""

    def __init__(self, config: WorkerConfig, store: Store | None = None):
        self.config = config.validate()
        self._own_store = store is None
        self.store = store or Store(database(config.mongo_uri, config.db_name, **config.mongo_timeouts()),
                                    create_indexes=False)
        self.claimant = Claimant(name=config.name, host=socket.gethostname(), gpus=config.gpus,
                                 mem_gb=config.mem_gb, tags=config.tags,
                                 lease_s=config.lease_s, distinct_grace_s=config.distinct_grace_s)
        self.capacity = Capacity(cpus=config.cpus, gpus=tuple(Gpu(i, m) for i, m in enumerate(config.gpu_mem_gb)))
        self._capacity_lock = threading.Lock()  # a claim and taking its capacity are one step
        self._too_hot: tuple[str, float] | None = None  # the thermal guard's reading while it holds claims
        self.resolver = make_resolver(self.store, config.cache_dir)
        self.executor = Executor(config.concurrency, config.inline_result_bytes,
                                 requests=ChildRequests(self.publish_child))
        self.datacache = DataCache(Path(config.cache_dir) / "data", config.data_cache_bytes)
        self.heartbeat = Heartbeat(self)
        self.health = HealthTracker(config.name, config.quarantine_policy())
        self.quota_room = QuotaRoom()
        self.live = LiveReporter(self)
        self.trouble = Trouble()
        self.fence = Fence(config.lease_s, config.fence_margin_s(), self._fence_expired)
        self._fenced: dict[str, str] = {}  # attempts killed here by their own deadline -> why
        self._lock = threading.Lock()
        self._running: dict[str, tuple[str, int]] = {}  # attempt id -> (task id, slot)
        self._doomed: set[str] = set()  # attempts the store no longer counts as ours
        self._submitters: dict[str, dict | None] = {}  # task id -> its submitter, for child tasks
        self._cv = threading.Condition()
        self._busy = 0  # slots claiming or running, and outcomes being recorded
        self._ended_gen = 0  # outcomes recorded so far (burst mode: did one land during my claim?)
        self._claim_gen = [0] * config.concurrency
        self._wake_gen = 0
        self._wake_signalled = False  # did the tailing slot's last wait end with a wake-up signal?
        self._waiter = threading.Lock()  # one idle slot tails the wake-ups; the others wait on it
        self._stopping = threading.Event()  # no more claims; run() returns after the drain
        self._aborting = threading.Event()  # the drain is over: kill, record, give up on retries
        self._admin_draining = False
        self._requested = 0  # set by signal handlers: 1 drain, 2 stop now
        self.wake = WakePipe()  # the main thread sleeps on it: signals, stop() and ending slots poke it
        self._burst_over = False
        self._wakeups_broken = False
        self._started = False
        self._closed = False
        self._threads: list[threading.Thread] = []
        self.done = 0  # attempts finished here (any outcome)
        self._finisher = ThreadPoolExecutor(max_workers=config.concurrency * FINISH_DEPTH,
                                            thread_name_prefix="suanwang-finish")
        self._pending: list[list[Future]] = [[] for _ in range(config.concurrency)]
        self._depth = max(FINISH_DEPTH, config.prefetch)  # outcomes of one slot being written at once
        self.short = ShortFunctions(config.prefetch)
        self.group = GroupCommit(self)
        self._ahead = ThreadPoolExecutor(max_workers=config.concurrency, thread_name_prefix="suanwang-ahead")
        self._ahead_lock = threading.Lock()

    # --------------------------------------------------------------- lifecycle
    def start(self) -> bool:
        """Connect (waiting for MongoDB if needed), register the name, start the children.

        False when asked to stop before MongoDB answered; ``Conflict`` when the name is taken.
        """
        if self._started:
            return True
        delay = RETRY_START_S
        while True:
            try:
                ensure_indexes_if_allowed(self.store)  # a least-privilege worker leaves them to the server
                self.store.workers.register(self.config.name, self.heartbeat.whoami(),
                                            stale_after_s=self.config.lease_s,
                                            holder_gone=stats.left_by_a_dead_daemon)
                break
            except PyMongoError as exc:
                self.trouble.failed("start", exc)
                if self._pause(delay):
                    return False
                delay = min(delay * 2, RETRY_MAX_S)
        self.trouble.ok()
        try:  # running quotas as the leader last counted them, before the first claim
            self.set_quota_room(self.store.quotas.room())
        except PyMongoError as exc:  # the heartbeat brings them
            log.warning("could not read the running quotas yet: %s", exc)
        self._started = True  # (the executor's children start with the first attempt)
        log.info("worker %s online: %d slot(s), tags %s, %s GPU(s), %.1f GB; heartbeat %gs, lease %gs",
                 self.config.name, self.config.concurrency, ",".join(self.config.tags) or "-", self.config.gpus,
                 self.config.mem_gb, self.config.heartbeat_s, self.config.lease_s)
        return True

    def run(self) -> int:
        """Run until ``stop()`` (or, in burst mode, until nothing is left); returns the exit code."""
        try:
            if not self.start():
                return 0
            self.heartbeat.start()
            self.fence.start()
            self._threads = [threading.Thread(target=self._run_slot, args=(i,), name=f"suanwang-slot-{i}",
                                              daemon=True) for i in range(self.config.concurrency)]
            for thread in self._threads:
                thread.start()
            while not self._pause(MAIN_WAKE_S) and any(t.is_alive() for t in self._threads):
                pass
            self._drain()
        finally:
            self.close()
        return 0

    def _run_slot(self, slot: int) -> None:
        try:
            self._slot_loop(slot)
        finally:  # burst mode ends its slots: the main thread notices at once
            self.wake.poke()

    def stop(self, now: bool = False) -> None:
        """Stop claiming and drain (``now``: kill running attempts at once)."""
        if now:
            self._aborting.set()
        self._stopping.set()
        self._notify_all()
        self.wake.poke()

    def request_stop(self, now: bool = False) -> None:
        """``stop()`` for signal handlers: sets a flag only (no locks); the wake pipe (``signal.set_wakeup_fd``)
        has the main thread act on it at once."""
        self._requested = max(self._requested, 2 if now else 1)
        self.wake.poke()  # a plain write: safe in a handler, and needed where no wakeup fd is set

    def _pause(self, seconds: float) -> bool:
        """The main thread's sleep: acts on signal requests; True once stopping."""
        if self._requested:
            self.stop(now=self._requested > 1)
        if self._stopping.is_set():
            return True
        self.wake.wait(seconds)
        if self._requested:
            self.stop(now=self._requested > 1)
        return self._stopping.is_set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def _notify_all(self) -> None:
        with self._cv:
            self._cv.notify_all()

    def _drain(self) -> None:
        self._stopping.set()
        self._notify_all()
        if self.running_ids():
            log.info("draining: waiting up to %gs for %d running attempt(s)", self.config.drain_timeout_s,
                     len(self.running_ids()))
            self._set_state(DRAINING)
        deadline = time.monotonic() + self.config.drain_timeout_s
        for thread in self._threads:
            while thread.is_alive() and not self._aborting.is_set() and time.monotonic() < deadline:
                thread.join(min(0.2, max(0.0, deadline - time.monotonic())))
                self._pause(0)  # a second signal: stop at once
        if any(t.is_alive() for t in self._threads):
            self._aborting.set()
            killed = self.executor.kill_all("the worker is stopping")
            if killed:
                log.warning("drain timeout: killed %d attempt(s): %s", len(killed), ", ".join(killed))
            for thread in self._threads:
                thread.join(15)
        self.group.close()  # outcomes already computed are written (or given up)
        self._finisher.shutdown(wait=True)

    def close(self) -> None:
        """Stop the heartbeat and the children, mark the worker offline, close our client."""
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        self._ahead.shutdown(wait=True)
        self.group.close()
        self._finisher.shutdown(wait=True)
        self.heartbeat.stop()
        self.fence.stop()
        self.executor.close()
        if self._started:
            self._set_state(OFFLINE)
            log.info("worker %s offline (%d attempt(s) run)", self.config.name, self.done)
        if self._own_store:
            self.store.close()
        self.wake.close()

    def _set_state(self, state: str) -> None:
        try:
            self.store.workers.workers.update_one({"_id": self.config.name},
                                                  {"$set": {"state": state, "running": []}} if state == OFFLINE
                                                  else {"$set": {"state": state}})
        except PyMongoError as exc:
            log.warning("could not mark worker %s %s: %s", self.config.name, state, exc)

    def __enter__(self) -> "Daemon":
        if not self.start():
            raise RuntimeError("stopped before MongoDB answered")
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------- used by the heartbeat
    def running_ids(self) -> list[str]:
        with self._lock:
            return list(self._running)

    def running_slots(self) -> dict[str, tuple[str, int]]:
        """Running attempts: attempt id -> (task id, slot)."""
        with self._lock:
            return dict(self._running)

    def lost(self, attempt_id: str) -> None:
        """The store no longer counts this attempt as ours: kill it, never record it."""
        with self._lock:
            if attempt_id not in self._running:
                return
            self._doomed.add(attempt_id)
        if self.executor.kill(attempt_id, "cancelled or lease lost"):
            log.info("attempt %s: cancelled or lost its lease; killed", attempt_id)

    def check_temperature(self, hottest: tuple[str, float] | None) -> None:
        """The thermal guard (``max_temp_c``): no new claims while a reading is at or above it."""
        limit = self.config.max_temp_c
        hot = hottest if limit is not None and hottest is not None and hottest[1] >= limit else None
        if (hot is None) != (self._too_hot is None):
            if hot:
                log.warning("worker %s: %s at %.0f °C (limit %g °C): no new claims until it cools", self.config.name,
                            hot[0], hot[1], limit)
            else:
                log.info("worker %s: cooled below %g °C; claiming again", self.config.name, limit)
                self._notify_all()
        self._too_hot = hot

    def set_admin_draining(self, draining: bool) -> None:
        if draining != self._admin_draining:
            log.info("worker %s: %s", self.config.name,
                     "draining (asked by an admin): no new claims" if draining else "claiming again")
            self._admin_draining = draining
            if not draining:
                self._notify_all()

    def set_quota_room(self, room: dict | None) -> None:
        """The leader's count of the room under running quotas: owners without room are left to wait.

        None (this worker's document not told yet) keeps what it knows: the leader clears with an
        empty list."""
        if room is None:
            return
        self.quota_room.update(room)
        self._avoid_full_owners()

    def _avoid_full_owners(self) -> None:
        owners = self.quota_room.avoid()
        if owners != self.claimant.avoid_owners:
            log.info("at their running quota (their tasks wait): %s", ", ".join(owners) or "nobody")
            self.claimant = replace(self.claimant, avoid_owners=owners)

    def describe(self) -> dict[str, Any]:
        """The daemon's part of the whoami."""
        with self._lock:
            running = list(self._running.items())
        try:
            ready = [list(v) for v in self.resolver.ready_versions()]
        except Exception as exc:  # the registry's scan must not cost a heartbeat
            log.debug("ready_versions failed: %s", exc)
            ready = []
        prefer = tuple(sorted(f"{code}@{version}" for code, version in ready))
        judged = self.health.flush(self.store)
        if judged is not None and judged != (self.claimant.avoid_functions, self.claimant.slow_functions):
            self.claimant = replace(self.claimant, avoid_functions=judged[0], slow_functions=judged[1])
        if prefer != self.claimant.prefer_versions:  # claims prefer versions already checked out here
            self.claimant = replace(self.claimant, prefer_versions=prefer)
        return {
            "concurrency": self.config.concurrency, "tags": list(self.config.tags),
            "gpu_count": self.config.gpus, "mem_gb": self.config.mem_gb,
            "heartbeat_s": self.config.heartbeat_s, "lease_s": self.config.lease_s,
            "running": [aid for aid, _ in running], "quarantined": self.health.view(),
            "running_tasks": [tid for _, (tid, _s) in running],
            # attempts held beyond one per slot were claimed ahead and wait their turn here
            "busy": min(len(running), self.config.concurrency),
            "claimed_ahead": max(0, len(running) - self.config.concurrency),
            "functions": sorted(BUILTINS), "versions_ready": ready,
            "capacity": {"cpus": self.config.cpus, "gpu_mem_gb": list(self.config.gpu_mem_gb),
                         "free": self.capacity.claim_limits(), "max_temp_c": self.config.max_temp_c},
            "too_hot": {"sensor": self._too_hot[0], "celsius": self._too_hot[1]} if self._too_hot else None,
        }


def _logging() -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def run_worker(config: WorkerConfig) -> int:
    """The ``suanwang worker`` entry point: run a daemon with signal handling; returns the exit code."""
    _logging()
    try:
        config.validate()
        daemon = Daemon(config)
    except ConfigError as exc:
        log.error("%s", exc.message)
        return 2
    signals = {"n": 0}

    def on_signal(signum, _frame):
        signals["n"] += 1
        if signals["n"] == 1:
            log.info("%s: draining (up to %gs); send it again to stop at once", signal.Signals(signum).name,
                     config.drain_timeout_s)
        daemon.request_stop(now=signals["n"] > 1)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        # the OS may deliver a signal to any thread: this fd wakes the main thread's select anyway
        signal.set_wakeup_fd(daemon.wake.fileno(), warn_on_full_buffer=False)
    try:
        return daemon.run()
    except Conflict as exc:
        log.error("%s", exc.message)
        daemon.close()
        return 1
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.set_wakeup_fd(-1)  # the pipe is closed with the daemon
