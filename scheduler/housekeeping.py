"""Periodic jobs, run by exactly one server process: the holder of the ``scheduler`` lease.

``tick(store, offline_after_s)`` is one round of housekeeping: workers not seen lately become
offline, attempts whose lease expired are lost (and their tasks re-queued or failed), pending
tasks whose time has come are queued; idle workers are woken when something became claimable.
Every part is idempotent, so a second run (or two servers at a hand-over) changes nothing more.

``Leader`` takes, and keeps renewing, a lease document ``{_id: "scheduler", holder,
expires_at}`` in ``locks``, timed by the MongoDB server's clock. Only while it holds the lease
does it run an APScheduler ``BackgroundScheduler`` with a ``MongoDBJobStore``
(collection ``apscheduler_jobs``, on a MongoClient of its own, because the job store's
shutdown closes its client). Other servers retry every third of the lease and take over when
it expires. Other features add their jobs through ``Leader.on_lead`` (called with the running
scheduler each time leadership is gained) and read ``Leader.scheduler`` while leading::

    leader.on_lead.append(lambda sched: sched.add_job(my_module.fire, "cron", minute="*/5",
                                                     id="my-job", replace_existing=True))

Job functions must be importable module-level callables with picklable arguments (the job
store pickles them), and idempotent: a lease hand-over can run a job twice.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Callable

from apscheduler.jobstores.mongodb import MongoDBJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from fsm.store import Store
from fsm.store.db import client as mongo_client
from fsm.store.driver import StoreError as PyMongoError

log = logging.getLogger("suanwang.scheduler")
#: ``locks`` document of the scheduler lease.
LOCK = "scheduler"
JOBS_COLLECTION = "apscheduler_jobs"
HOUSEKEEPING_JOB = "housekeeping"


def tick(store: Store, offline_after_s: float) -> dict:
    """One round of housekeeping; safe to run twice, or in two processes at once."""
    offline = store.workers.mark_offline(offline_after_s)
    lost = store.tasks.requeue_expired()
    due = store.tasks.promote_due()
    if lost or due:
        store.wakeups.signal(n=lost + due)
    if offline:
        log.warning("workers offline (no heartbeat for %gs): %s", offline_after_s, ", ".join(offline))
    return {"offline": offline, "lost": lost, "due": due}


class JobStore(MongoDBJobStore):
    """APScheduler's MongoDB job store, made to ride out a MongoDB outage.

    APScheduler 3 guards its read of due jobs but not the write of a job's next run time,
    nor the read of the next wake-up: an error there ends the scheduler's thread. Here such
    an error is logged and the scheduler looks again shortly (jobs are idempotent, so one run
    too many is harmless).
    """

    RETRY_S = 1.0

    def update_job(self, job):
        try:
            super().update_job(job)
        except PyMongoError as exc:
            log.warning("could not save job %s's next run time: %s", job.id, str(exc).split(",")[0][:200])

    def get_next_run_time(self):
        try:
            return super().get_next_run_time()
        except PyMongoError as exc:
            log.warning("could not read the next job run time: %s", str(exc).split(",")[0][:200])
            return datetime.now(timezone.utc) + timedelta(seconds=self.RETRY_S)


#: Stores of the leaders in this process, by database name: the job store keeps only the name.
_stores: dict[str, Store] = {}


def run_housekeeping(db_name: str, offline_after_s: float) -> None:
    """The APScheduler job (module level, so the job store keeps only a reference to it)."""
    store = _stores.get(db_name)
    if store is None:
        return
    try:
        tick(store, offline_after_s)
    except PyMongoError as exc:
        log.warning("housekeeping skipped: MongoDB error %s", str(exc).split(",")[0][:200])


class Leader:
    """Holds the scheduler lease and runs APScheduler while it does.

    ``start()`` runs a background thread that calls ``step()`` every ``lease_s / 3``;
    ``stop()`` ends it, stops the scheduler and gives the lease back. Tests call ``step()``.
    """

    def __init__(self, store: Store, uri: str, *, lease_s: float = 10.0, housekeeping_s: float = 1.0,
                 offline_after_s: float = 10.0, lock: str = LOCK):
        self.store = store
        self.uri = uri
        self.lease_s = lease_s
        self.housekeeping_s = housekeeping_s
        self.offline_after_s = offline_after_s
        self.lock = lock
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        #: The running scheduler while this process leads, else None.
        self.scheduler: BackgroundScheduler | None = None
        #: Called with the running scheduler each time leadership is gained (add jobs here).
        self.on_lead: list[Callable[[BackgroundScheduler], None]] = []
        #: Called (no arguments) after leadership is lost or given up.
        self.on_lose: list[Callable[[], None]] = []
        self._valid_until = 0.0  # monotonic time until which our last renewal surely holds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._jobs_client = None  # the job store's own MongoClient while leading

    @property
    def is_leader(self) -> bool:
        return self.scheduler is not None

    # ------------------------------------------------------------------ lease
    def try_acquire(self) -> bool:
        """Take the lease if it is free or expired, or renew ours (server clock); True while held."""
        asked = time.monotonic()
        held = self.store.locks.acquire(self.lock, self.holder, self.lease_s)
        if held:
            # Stop before the lease can expire on the server, even if renewals start failing.
            self._valid_until = asked + self.lease_s * 2 / 3
        return held

    def release(self) -> None:
        """Give the lease back (only if we hold it), so another server takes over at once."""
        try:
            self.store.locks.release(self.lock, self.holder)
        except PyMongoError as exc:
            log.warning("could not release the scheduler lease: %s", str(exc).split(",")[0][:200])
        self._valid_until = 0.0

    # ------------------------------------------------------------------- loop
    def step(self) -> bool:
        """One check: gain, keep or lose leadership; returns whether this process now leads."""
        try:
            held = self.try_acquire()
        except PyMongoError as exc:
            held = time.monotonic() < self._valid_until
            log.warning("scheduler lease check failed (%s); %s", str(exc).split(",")[0][:200],
                        "still within the lease" if held else "not leading")
        if held and not self.is_leader:
            try:
                self._start_scheduler()
            except Exception:  # noqa: BLE001 - MongoDB away at the wrong moment: try again next step
                log.exception("could not start the scheduler; will retry")
                self._stop_scheduler()
                self.release()
        elif not held and self.is_leader:
            log.warning("lost the scheduler lease; stopping periodic jobs here")
            self._stop_scheduler()
        elif held and not self._scheduler_alive():
            log.warning("the scheduler's thread died; starting it again")
            self._stop_scheduler()
            self.step()
        return self.is_leader

    def _scheduler_alive(self) -> bool:
        thread = getattr(self.scheduler, "_thread", None)  # BackgroundScheduler's loop thread
        return thread is None or thread.is_alive()

    def _start_scheduler(self) -> None:
        db_name = self.store.name
        self._jobs_client = mongo_client(self.uri, serverSelectionTimeoutMS=int(self.lease_s * 1000))
        jobstore = JobStore(database=db_name, collection=JOBS_COLLECTION, client=self._jobs_client)
        scheduler = BackgroundScheduler(jobstores={"default": jobstore}, timezone="UTC",
                                        job_defaults={"coalesce": True, "max_instances": 1})
        _stores[db_name] = self.store
        scheduler.add_job(run_housekeeping, "interval", seconds=self.housekeeping_s, id=HOUSEKEEPING_JOB,
                          args=[db_name, self.offline_after_s], replace_existing=True, coalesce=True,
                          max_instances=1, misfire_grace_time=max(1, int(self.housekeeping_s * 5)))
        scheduler.start()
        self.scheduler = scheduler
        log.info("this server (%s) runs the periodic jobs", self.holder)
        for hook in list(self.on_lead):
            try:
                hook(scheduler)
            except Exception:  # noqa: BLE001 - one broken hook must not stop housekeeping
                log.exception("a leadership hook failed")

    def _stop_scheduler(self) -> None:
        scheduler, self.scheduler = self.scheduler, None
        client, self._jobs_client = self._jobs_client, None
        if scheduler is not None:
            try:
                scheduler.shutdown(wait=False)  # closes the job store's client too
            except Exception:  # noqa: BLE001
                log.exception("scheduler shutdown failed")
            for hook in list(self.on_lose):
                try:
                    hook()
                except Exception:  # noqa: BLE001
                    log.exception("a leadership-lost hook failed")
        elif client is not None:
            client.close()

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
        """Stop checking, stop the scheduler, give the lease back."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.lease_s)
            self._thread = None
        self._stop_scheduler()
        self.release()
