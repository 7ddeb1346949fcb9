"""The data layer: the only package that talks to MongoDB directly.

``Store(db)`` bundles the per-collection verbs so callers hold one object.
"""
from __future__ import annotations

from pymongo.database import Database

from fsm.store.data import DataStore
from fsm.store.db import database, server_now
from fsm.store.locks import LockStore
from fsm.store.machines import MachineStats
from fsm.store.placement import PlacementReads
from fsm.store.live import LiveReports
from fsm.store.retention import Retention
from fsm.store.schema import ensure_indexes
from fsm.store.schedules import ScheduleStore
from fsm.store.tasks import Claim, Claimant, TaskStore
from fsm.store.users import UserStore
from fsm.store.wakeups import Wakeups
from fsm.store.workers import WorkerStore


class Store:
    """Every verb Suanwang uses, over one database."""

    def __init__(self, db: Database, *, create_indexes: bool = True):
        self.db = db
        if create_indexes:
            ensure_indexes(db)
        self.tasks = TaskStore(db)
        self.workers = WorkerStore(db)
        self.users = UserStore(db)
        self.wakeups = Wakeups(db)
        self.placement = PlacementReads(db)
        self.retention = Retention(db)
        if create_indexes:
            self.retention.ensure_indexes()
        self.machines = MachineStats(db)
        self.locks = LockStore(db)
        self.schedules = ScheduleStore(db)
        if create_indexes:
            self.schedules.ensure_indexes()
        self.data = DataStore(db)
        if create_indexes:
            self.data.ensure_indexes()
        self.live = LiveReports(db)
        self.tasks.flow.wake = lambda n: self.wakeups.signal(n=n)

    @classmethod
    def connect(cls, uri: str, name: str | None = None) -> "Store":
        return cls(database(uri, name))

    def close(self) -> None:
        self.wakeups.close()
        self.db.client.close()


__all__ = ["Store", "DataStore", "TaskStore", "WorkerStore", "UserStore", "Wakeups", "LockStore", "ScheduleStore",
           "Claim", "Claimant", "database", "server_now", "ensure_indexes"]
