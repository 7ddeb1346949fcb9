"""Periodic jobs, run by exactly one server process: the holder of the ``scheduler`` lease.

``Leader`` takes (and keeps renewing) a lease document in ``locks`` by the MongoDB server's
clock; only while it holds it does it run APScheduler (MongoDB job store, a client of its
own). The housekeeping jobs are idempotent, so a brief overlap at a hand-over is harmless.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import timedelta
from typing import Callable

from apscheduler.jobstores.mongodb import MongoDBJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError, PyMongoError

from fsm.store import Store, server_now
from fsm.store.db import client as mongo_client

log = logging.getLogger("suanwang.scheduler")
LOCK = "scheduler"
JOBS_COLLECTION = "apscheduler_jobs"


def tick(store: Store, offline_after_s: float) -> dict:
    """One round of housekeeping; safe to run twice at once."""
    offline = store.workers.mark_offline(offline_after_s)
    lost = store.tasks.requeue_expired()
    due = store.tasks.promote_due()
    if lost or due:
        store.wakeups.signal(n=lost + due)
    if offline:
        log.warning("workers offline (no heartbeat for %gs): %s", offline_after_s, ", ".join(offline))
    return {"offline": offline, "lost": lost, "due": due}


def run_housekeeping(uri: str, db_name: str, offline_after_s: float) -> None:
    """The APScheduler job (module-level, so the job store keeps only a reference)."""
    store = _stores.get((uri, db_name))
    if store is None:
        return
    try:
        tick(store, offline_after_s)
    except PyMongoError as exc:
        log.warning("housekeeping skipped: MongoDB error %s", str(exc).split(",")[0][:200])


_stores: dict[tuple, Store] = {}


class Leader:
    """Holds the scheduler lease and runs APScheduler while it does."""

    def __init__(self, store: Store, uri: str, *, lease_s: float = 10.0, housekeeping_s: float = 1.0,
                 offline_after_s: float = 10.0):
        self.store = store
        self.uri = uri
        self.lease_s = lease_s
        self.housekeeping_s = housekeeping_s
        self.offline_after_s = offline_after_s
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.scheduler: BackgroundScheduler | None = None
        #: Called with the running scheduler each time leadership is gained (schedules plug in here).
        self.on_lead: list[Callable[[BackgroundScheduler], None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._jobs_client = None

    @property
    def is_leader(self) -> bool:
        return self.scheduler is not None

    def try_acquire(self) -> bool:
        """Take or renew the lease (server clock); True while this process holds it."""
        db = self.store.db
        now = server_now(db)
        until = now + timedelta(seconds=self.lease_s)
        try:
            doc = db.locks.find_one_and_update(
                {"_id": LOCK, "$or": [{"holder": self.holder}, {"expires_at": {"$lt": now}}]},
                {"$set": {"holder": self.holder, "expires_at": until, "renewed_at": now}},
                upsert=True, return_document=ReturnDocument.AFTER)
        except DuplicateKeyError:
            return False  # someone else holds a live lease (the upsert lost the race)
        return doc is not None and doc["holder"] == self.holder

    def release(self) -> None:
        try:
            self.store.db.locks.delete_one({"_id": LOCK, "holder": self.holder})
        except PyMongoError:
            pass

    def step(self) -> None:
        """One check: gain, keep or lose leadership."""
        try:
            held = self.try_acquire()
        except PyMongoError as exc:
            log.warning("leader lease check failed: %s", str(exc).split(",")[0][:200])
            held = False
        if held and not self.is_leader:
            self._start_scheduler()
        elif not held and self.is_leader:
            log.warning("lost the scheduler lease; stopping periodic jobs here")
            self._stop_scheduler()

    def _start_scheduler(self) -> None:
        db = self.store.db
        self._jobs_client = mongo_client(self.uri)  # its own: the job store closes it on shutdown
        jobstore = MongoDBJobStore(database=db.name, collection=JOBS_COLLECTION, client=self._jobs_client)
        scheduler = BackgroundScheduler(jobstores={"default": jobstore}, timezone="UTC",
                                        job_defaults={"coalesce": True, "max_instances": 1})
        _stores[(self.uri, db.name)] = self.store
        scheduler.add_job(run_housekeeping, "interval", seconds=self.housekeeping_s, id="housekeeping",
                          args=[self.uri, db.name, self.offline_after_s], replace_existing=True,
                          misfire_grace_time=max(1, int(self.housekeeping_s * 5)))
        scheduler.start()
        self.scheduler = scheduler
        log.info("this server (%s) runs the periodic jobs", self.holder)
        for hook in self.on_lead:
            try:
                hook(scheduler)
            except Exception:  # noqa: BLE001 - one broken hook must not stop housekeeping
                log.exception("a leadership hook failed")

    def _stop_scheduler(self) -> None:
        scheduler, self.scheduler = self.scheduler, None
        if scheduler is not None:
            try:
                scheduler.shutdown(wait=False)
            except Exception:  # noqa: BLE001
                log.exception("scheduler shutdown failed")

    def start(self) -> None:
        self.step()
        self._thread = threading.Thread(target=self._loop, name="suanwang-leader", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            self.step()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        was_leader = self.is_leader
        self._stop_scheduler()
        if was_leader:
            self.release()
