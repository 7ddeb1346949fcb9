"""The worker daemon: claim a task per free slot, run it in that slot's child, record the end.

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

import contextlib
import logging
import shutil
from dataclasses import replace
from pathlib import Path
import signal
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


from fsm.errors import Conflict, ConfigError, InvalidTransition, LeaseLost, SuanwangError
from fsm.states import AttemptState
from fsm.store import Claim, Claimant, Store, database
from fsm.store.access import ensure_indexes_if_allowed
from fsm.store.driver import UNSTORABLE, StoreError as PyMongoError, is_transient
from fsm.store.workers import DRAINING, OFFLINE
from registry.builtins import BUILTINS
from registry.resolver import make_resolver
from worker import largedata
from worker.config import WorkerConfig
from worker import upstream
from worker.datacache import DataCache
from worker.executor import Executor, Outcome
from worker.fence import Fence
from worker.health import HealthTracker
from worker.heartbeat import Heartbeat
from worker.live import LiveReporter
from worker.requests import ChildRequests

log = logging.getLogger("suanwang.worker")

A = AttemptState
#: First idle wait; doubles up to ``poll_max_s`` while nothing is claimable.
IDLE_START_S = 0.05
#: Backoff after a MongoDB error: from, to.
RETRY_START_S, RETRY_MAX_S = 0.2, 5.0
#: Outcomes of one slot being written while it runs its next attempt.
FINISH_DEPTH = 2


class Trouble:
    """Says once that MongoDB is unreachable, and once that it is back, timed from the last success
    (the first error is logged only after a call timed out, well after the connection was lost)."""

    def __init__(self):
        self._since: float | None = None  # the last success before the current trouble
        self._last_ok = time.monotonic()
        self._lock = threading.Lock()

    def failed(self, what: str, exc: Exception) -> None:
        with self._lock:
            first = self._since is None
            if first:
                self._since = self._last_ok
        if first:
            log.warning("MongoDB error in %s (%s: %s), %.1f s after the last successful call; retrying with "
                        "backoff", what, type(exc).__name__, str(exc).split(",")[0][:200],
                        time.monotonic() - self._since)
        else:
            log.debug("MongoDB still failing in %s: %s", what, exc)

    def ok(self) -> None:
        self._last_ok = time.monotonic()
        if self._since is not None:
            with self._lock:
                since, self._since = self._since, None
            if since is not None:
                log.info("MongoDB reachable again after %.1f s", self._last_ok - since)


def _transient(exc: PyMongoError) -> bool:
    return is_transient(exc)


class Daemon:
    """A worker daemon. ``run()`` until stopped; ``run_once()`` is one iteration (tests)."""

    def __init__(self, config: WorkerConfig, store: Store | None = None):
        self.config = config.validate()
        self._own_store = store is None
        self.store = store or Store(database(config.mongo_uri, config.db_name, **config.mongo_timeouts()),
                                    create_indexes=False)
        self.claimant = Claimant(name=config.name, host=socket.gethostname(), gpus=config.gpus,
                                 mem_gb=config.mem_gb, tags=config.tags,
                                 lease_s=config.lease_s, distinct_grace_s=config.distinct_grace_s)
        self.resolver = make_resolver(self.store, config.cache_dir)
        self.executor = Executor(config.concurrency, config.inline_result_bytes,
                                 requests=ChildRequests(self.publish_child))
        self.datacache = DataCache(Path(config.cache_dir) / "data", config.data_cache_bytes)
        self.heartbeat = Heartbeat(self)
        self.health = HealthTracker(config.name, config.quarantine_policy())
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
        self._waiter = threading.Lock()  # one idle slot tails the wake-ups; the others wait on it
        self._stopping = threading.Event()  # no more claims; run() returns after the drain
        self._aborting = threading.Event()  # the drain is over: kill, record, give up on retries
        self._admin_draining = False
        self._requested = 0  # set by signal handlers: 1 drain, 2 stop now
        self._burst_over = False
        self._wakeups_broken = False
        self._started = False
        self._closed = False
        self._threads: list[threading.Thread] = []
        self.done = 0  # attempts finished here (any outcome)
        self._finisher = ThreadPoolExecutor(max_workers=config.concurrency * FINISH_DEPTH,
                                            thread_name_prefix="suanwang-finish")
        self._pending: list[list[Future]] = [[] for _ in range(config.concurrency)]

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
                ensure_indexes_if_allowed(self.store.db)  # a least-privilege worker leaves them to the server
                self.store.workers.register(self.config.name, self.heartbeat.whoami(),
                                            stale_after_s=self.config.lease_s)
                break
            except PyMongoError as exc:
                self.trouble.failed("start", exc)
                if self._pause(delay):
                    return False
                delay = min(delay * 2, RETRY_MAX_S)
        self.trouble.ok()
        self.executor.start()
        self._started = True
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
            self._threads = [threading.Thread(target=self._slot_loop, args=(i,), name=f"suanwang-slot-{i}",
                                              daemon=True) for i in range(self.config.concurrency)]
            for thread in self._threads:
                thread.start()
            while not self._pause(0.2) and any(t.is_alive() for t in self._threads):
                pass
            self._drain()
        finally:
            self.close()
        return 0

    def stop(self, now: bool = False) -> None:
        """Stop claiming and drain (``now``: kill running attempts at once)."""
        if now:
            self._aborting.set()
        self._stopping.set()
        self._notify_all()

    def request_stop(self, now: bool = False) -> None:
        """``stop()`` for signal handlers: sets a flag only (no locks); ``run()`` acts on it within 0.2 s."""
        self._requested = max(self._requested, 2 if now else 1)

    def _pause(self, seconds: float) -> bool:
        """The main thread's sleep: acts on signal requests; True once stopping."""
        if self._requested:
            self.stop(now=self._requested > 1)
        return self._stopping.wait(seconds)

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
        self._finisher.shutdown(wait=True)  # outcomes already computed are written (or given up)

    def close(self) -> None:
        """Stop the heartbeat and the children, mark the worker offline, close our client."""
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        self._finisher.shutdown(wait=True)
        self.heartbeat.stop()
        self.fence.stop()
        self.executor.close()
        if self._started:
            self._set_state(OFFLINE)
            log.info("worker %s offline (%d attempt(s) run)", self.config.name, self.done)
        if self._own_store:
            self.store.close()

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

    # -------------------------------------------------------- one iteration
    def run_once(self) -> int:
        """One heartbeat, then one claim per slot, run side by side to their ends; returns attempts run."""
        if not self.start():
            return 0
        self.heartbeat.beat()
        if self._claiming_paused():
            return 0
        slots = self.config.concurrency
        if slots == 1:
            return int(self._step(0, sync=True))
        worked = [False] * slots
        threads = [threading.Thread(target=lambda i=i: worked.__setitem__(i, self._step(i, sync=True)))
                   for i in range(slots)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return sum(worked)

    # ------------------------------------------------------------ the slots
    def _claiming_paused(self) -> bool:
        return self._stopping.is_set() or self._admin_draining

    def _slot_loop(self, slot: int) -> None:
        idle_s, retry_s = IDLE_START_S, RETRY_START_S
        while not self._stopping.is_set():
            if self._admin_draining:
                self._stopping.wait(min(1.0, self.config.heartbeat_s))
                continue
            try:
                worked = self._step(slot)
                retry_s = RETRY_START_S
            except PyMongoError as exc:
                self.trouble.failed(f"slot {slot}", exc)
                self._stopping.wait(retry_s)
                retry_s = min(retry_s * 2, RETRY_MAX_S)
                continue
            except Exception:
                log.exception("slot %d: unexpected error", slot)
                self._stopping.wait(1.0)
                continue
            if worked:
                idle_s = IDLE_START_S
            elif self.config.burst:
                if self._burst_done(slot):
                    return
            else:
                try:
                    self._idle_wait(min(idle_s, self.config.io_timeout_s() / 2))  # within the socket timeout
                except Exception:
                    log.exception("slot %d: idle wait failed", slot)
                    self._stopping.wait(idle_s)
                idle_s = min(idle_s * 2, self.config.poll_max_s)

    def _step(self, slot: int, sync: bool = False) -> bool:
        """Claim one task for this slot and run it; False when nothing was claimable.

        The outcome is written by the finisher pool while the slot claims its next task (at
        most one write per slot in flight), so MongoDB round trips overlap; ``sync`` writes it
        before returning.
        """
        with self._cv:
            self._busy += 1
            self._claim_gen[slot] = self._ended_gen
        handed_off = False
        try:
            sent = time.monotonic()  # the lease the server sets starts after this
            claim = self.store.tasks.claim_next(self.claimant)
            self.trouble.ok()
            if claim is None:
                return False
            with self._lock:
                self._running[claim.attempt_id] = (claim.task_id, slot)
            self.fence.hold(claim.attempt_id, sent)
            try:
                outcome = self._execute(slot, claim)
            except BaseException:
                self._release(claim)
                raise
            if sync:
                self._record(claim, outcome, leave=False)
            else:
                pending = self._pending[slot]
                while len(pending) >= FINISH_DEPTH:
                    pending.pop(0).result()
                pending.append(self._finisher.submit(self._record, claim, outcome, True))
                handed_off = True
            return True
        finally:
            if not handed_off:
                self._leave()

    def _leave(self, recorded: bool = False) -> None:
        with self._cv:
            self._busy -= 1
            if recorded:
                self._ended_gen += 1
            self._cv.notify_all()

    def _release(self, claim: Claim) -> None:
        with self._lock:
            self._running.pop(claim.attempt_id, None)
            self._doomed.discard(claim.attempt_id)
            self._submitters.pop(claim.task_id, None)
        self.fence.drop(claim.attempt_id)

    def _record(self, claim: Claim, outcome: Outcome, leave: bool) -> None:
        try:
            self._finish(claim, outcome)
            self.health.note(claim.task["function"], outcome.state, outcome.seconds)
        except Exception:
            log.exception("task %s: recording attempt %s failed; its lease will expire", claim.task_id,
                          claim.attempt_id)
        finally:
            self._release(claim)
            if outcome.workdir:
                shutil.rmtree(outcome.workdir, ignore_errors=True)
            self.done += 1
            if leave:
                self._leave(recorded=True)

    def _execute(self, slot: int, claim: Claim) -> Outcome:
        task = claim.task
        try:
            spec = self.resolver.prepare(task["function"], task.get("version"))
        except SuanwangError as exc:  # FunctionNotFound, RegistryError: the message is for the user
            return Outcome(A.FAILED, error=exc.message)
        except Exception as exc:
            log.exception("task %s: resolving %s failed", claim.task_id, task["function"])
            return Outcome(A.FAILED, error=f"cannot prepare {task['function']}: {type(exc).__name__}: {exc}")
        if claim.attempt_id in self._doomed:
            return Outcome(A.CANCELLED, error="stopped before it started")
        with contextlib.ExitStack() as held:
            try:  # {"__data__": id} arguments become local paths, held while the attempt runs
                args, kwargs = held.enter_context(largedata.arguments(self.datacache, self.store, task))
            except Exception as exc:  # noqa: BLE001 - an unknown id is permanent, the rest retried
                log.warning("task %s: %s", claim.task_id, exc)
                return largedata.fetch_failed(exc)
            try:  # {"__result__": id} arguments become their dependencies' results
                args, kwargs = upstream.resolve(self.store, args, kwargs,
                                                lambda data_id: self.datacache.fetch(self.store, data_id))
            except SuanwangError as exc:
                return Outcome(A.FAILED, error=exc.message)
            if claim.attempt_id in self._doomed:  # cancelled while its data was fetched
                return Outcome(A.CANCELLED, error="stopped before it started")
            outcome = self.executor.run(slot, claim.attempt_id, spec.entrypoint, spec.path, args, kwargs,
                                        float(task.get("timeout_s") or 3600.0), self._meta(claim))
            self.live.last_progress(claim.task_id, claim.attempt_id, self.executor.children[slot].progress)
            return outcome

    def _finish(self, claim: Claim, outcome: Outcome) -> None:
        """Write the outcome, retrying while MongoDB is away, until it is stored or refused."""
        task_id, attempt_id = claim.task_id, claim.attempt_id
        outcome = self._fenced_outcome(attempt_id, outcome)
        if outcome.state == A.CANCELLED:
            if not self._aborting.is_set():
                log.info("task %s: attempt %s stopped (cancelled, or its lease was lost)", task_id, attempt_id)
                return  # the store already says how it ended
            outcome = Outcome(A.LOST, error=f"worker {self.config.name} stopped before the attempt finished "
                                            f"(drain timeout {self.config.drain_timeout_s:g} s)", logs=outcome.logs)
        outcome = largedata.store_result(self.store, claim.task, attempt_id, outcome, self._aborting)
        delay, permanent = RETRY_START_S, 0
        while True:
            try:
                self.store.tasks.finish_attempt(
                    task_id, attempt_id, outcome.state, result=outcome.result, error=outcome.error,
                    traceback=outcome.traceback, logs=outcome.logs or None, worker=self.config.name,
                    result_ref=outcome.result_ref, permanent=outcome.permanent)
                self.trouble.ok()
                if outcome.state != A.SUCCEEDED:
                    log.info("task %s (%s): attempt %s %s: %s", task_id, claim.task.get("function"), attempt_id,
                             outcome.state.value, outcome.error)
                return
            except (LeaseLost, InvalidTransition) as exc:
                log.info("task %s: %s", task_id, exc)
                largedata.drop_result(self.store, outcome)
                return
            except Conflict as exc:
                log.warning("task %s: %s; its lease will expire and it will be retried", task_id, exc)
                return
            except UNSTORABLE as exc:
                outcome = self._unstorable(outcome, exc)
                if outcome is None:
                    log.error("task %s: attempt %s cannot be recorded (%s); its lease will expire", task_id,
                              attempt_id, exc)
                    return
            except PyMongoError as exc:
                if not _transient(exc):
                    permanent += 1
                    outcome = self._unstorable(outcome, exc) if permanent <= 2 else None
                    if outcome is None:
                        log.error("task %s: attempt %s cannot be recorded (%s); its lease will expire", task_id,
                                  attempt_id, exc)
                        return
                    continue
                self.trouble.failed(f"recording task {task_id}", exc)
                if self._aborting.is_set():
                    log.error("task %s: giving up recording attempt %s (stopping); its lease will expire",
                              task_id, attempt_id)
                    return
                self._aborting.wait(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    @staticmethod
    def _unstorable(outcome: Outcome, exc: Exception) -> Outcome | None:
        """The store refused the outcome's data: record a failure that says why, once."""
        if outcome.state == A.SUCCEEDED:
            return Outcome(A.FAILED, error=f"the result cannot be stored: {type(exc).__name__}: {str(exc)[:300]}",
                           logs=(outcome.logs or "")[-2000:], permanent=True)
        if outcome.traceback or outcome.logs:  # drop the bulky parts and try once more
            return Outcome(outcome.state, error=(outcome.error or "")[:2000], permanent=outcome.permanent)
        return None

    # ------------------------------------------------------------- idling
    def _burst_done(self, slot: int) -> bool:
        """Burst mode found nothing: over when no slot claims, runs or records, else wait for one to end.

        An outcome recorded while this slot's claim was under way (a retry may have re-queued a
        task) means: claim again before concluding.
        """
        with self._cv:
            if self._burst_over:
                return True
            if self._ended_gen != self._claim_gen[slot]:
                return False
            if self._busy == 0:
                self._burst_over = True
                self._cv.notify_all()
                return True
            self._cv.wait(0.5)
            return self._burst_over

    def _idle_wait(self, timeout: float) -> None:
        if self._waiter.acquire(blocking=False):
            try:
                began = time.monotonic()
                try:
                    got = self.store.wakeups.wait(timeout)
                except Exception as exc:  # wake-ups are an optimisation: fall back to polling
                    got = False
                    if not self._wakeups_broken:
                        self._wakeups_broken = True
                        log.warning("wake-up signals unavailable (%s: %s); polling every %gs at most",
                                    type(exc).__name__, exc, self.config.poll_max_s)
                if not got:  # a dead cursor answers at once: never spin on it
                    self._stopping.wait(max(0.0, timeout - (time.monotonic() - began)))
            finally:
                self._waiter.release()
            with self._cv:
                self._wake_gen += 1
                self._cv.notify_all()
        else:
            with self._cv:
                gen = self._wake_gen
                self._cv.wait_for(lambda: self._wake_gen != gen or self._stopping.is_set(), timeout)

    # ------------------------------------------------ what a running task asks
    def _meta(self, claim: Claim) -> dict:
        """What ``current_task()`` tells the task about itself."""
        number = next((a.get("number") for a in claim.task.get("attempts", []) if a.get("id") == claim.attempt_id),
                      None)
        return {"task_id": claim.task_id, "attempt": number, "worker": self.config.name}

    def publish_child(self, attempt_id: str, body) -> str | list[str]:
        """``current_task().submit`` / ``submit_many``: publish child tasks as the parent task's
        submitter, with that user's rights; returns the id (or the ids of a list)."""
        from scheduler import service  # the application layer (no Flask): only daemons that use it load it
        from scheduler.config import DEFAULT_PRIORITY_CAPS

        with self._lock:
            task_id = self._running.get(attempt_id, (None, None))[0]
        if task_id is None or attempt_id in self._doomed:
            raise LeaseLost(f"attempt {attempt_id} no longer runs here; the child task was not published")
        if not isinstance(body, (dict, list)):
            raise SuanwangError("a child task is a task body (an object), or a list of them")
        user = self._submitters.get(task_id)
        if user is None:  # read once per attempt: a fan-out of 1,000 children needs it 1,000 times
            user = self._submitters[task_id] = self.store.tasks.flow.submitter(task_id)
        if user is None:
            raise SuanwangError(f"task {task_id} has no recorded submitter role (published by an older server); "
                                "no child task can be published")
        # The server's priority caps are its own setting; children get the default ones.
        docs = service.publish(self.store, body, user, priority_caps=DEFAULT_PRIORITY_CAPS, parent=task_id)
        return [d["_id"] for d in docs] if isinstance(body, list) else docs[0]["_id"]
    # ------------------------------------------------------- self-fencing
    def _fence_expired(self, attempt_id: str, silent_s: float) -> None:
        """The fence's deadline passed without a renewal: kill the attempt before its lease ends on
        the server (another worker may get it then); it is recorded as lost once MongoDB answers."""
        with self._lock:
            if attempt_id not in self._running:
                return
            self._fenced[attempt_id] = (f"worker {self.config.name} could not renew its lease for {silent_s:.1f} s "
                                        f"(lease {self.config.lease_s:g} s); killed by its own deadline")
        if self.executor.kill(attempt_id, "lease could not be renewed"):
            log.warning("attempt %s: no lease renewal for %.1f s; killed before its lease ends (self-fencing)",
                        attempt_id, silent_s)

    def _fenced_outcome(self, attempt_id: str, outcome: Outcome) -> Outcome:
        """An attempt this worker fenced is reported as lost (retried at once), whatever it returned."""
        with self._lock:
            why = self._fenced.pop(attempt_id, None)
        if why is None:
            return outcome
        return Outcome(A.LOST, error=why, logs=outcome.logs)

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

    def set_admin_draining(self, draining: bool) -> None:
        if draining != self._admin_draining:
            log.info("worker %s: %s", self.config.name,
                     "draining (asked by an admin): no new claims" if draining else "claiming again")
            self._admin_draining = draining
            if not draining:
                self._notify_all()

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
            "running": [aid for aid, _ in running], "quarantined": self.health.view(), "running_tasks": [tid for _, (tid, _s) in running],
            "busy": len(running), "functions": sorted(BUILTINS), "versions_ready": ready,
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
    try:
        return daemon.run()
    except Conflict as exc:
        log.error("%s", exc.message)
        daemon.close()
        return 1
