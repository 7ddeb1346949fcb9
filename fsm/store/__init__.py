"""The data layer: the only package that talks to MongoDB directly.

``Store(db)`` bundles the per-collection verbs (and the named read models) so callers hold
one object. Nothing above this package imports pymongo or bson, nor uses ``Store.db``: an
import-linter contract in setup.cfg keeps it so.
"""
from __future__ import annotations

import pymongo
from pymongo.database import Database

from fsm.store.audit import AuditStore
from fsm.store.data import DataStore
from fsm.store.db import database, server_now
from fsm.store.groups import GroupStore
from fsm.store.ledger import LedgerStore
from fsm.store.quotas import QuotaStore
from fsm.store.services import ServiceStore
from fsm.store.functions import FunctionStore, RepoStore
from fsm.store.live import LiveReports
from fsm.store.locks import LockStore
from fsm.store.machines import MachineStats
from fsm.store.notify import NotifyStore
from fsm.store.placement import PlacementReads
from fsm.store.reads import TaskReads
from fsm.store.resource_stats import ResourceStats
from fsm.store.retention import Retention
from fsm.store.schedules import ScheduleStore
from fsm.store.schema import ensure_indexes
from fsm.store.sessions import SessionStore
from fsm.store.settings import SettingsStore
from fsm.store.task_writer import Success
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
        self.schedules = ScheduleStore(db)
        if create_indexes:
            self.schedules.ensure_indexes()
        self.data = DataStore(db)
        if create_indexes:
            self.data.ensure_indexes()
        self.live = LiveReports(db)
        self.tasks.flow.wake = lambda n: self.wakeups.signal(n=n)
        self.wakeups.on_lanes = self.tasks.lanes.heard_of
        self.functions = FunctionStore(db)
        self.repos = RepoStore(db)
        self.locks = LockStore(db)
        self.settings = SettingsStore(db)
        self.notify = NotifyStore(db)
        #: Named read models (status counts, queue age, finished since, running by worker, charts).
        self.reads = TaskReads(db)
        self.resource_stats = ResourceStats(db)
        #: The append-only trail of who changed what (roles, tokens, deploys, credits).
        self.audit = AuditStore(db)
        if create_indexes:
            self.audit.ensure_indexes()
        #: The pages' logins, kept on the server (logout and password changes end them).
        self.sessions = SessionStore(db)
        if create_indexes:
            self.sessions.ensure_indexes()
        self.groups = GroupStore(db)
        self.services = ServiceStore(db)
        #: Credits: balances (``accounts``) and the append-only ``ledger``.
        self.ledger = LedgerStore(db)
        if create_indexes:
            self.ledger.ensure_indexes()
        #: Limits on what a user (or a group's members) has waiting, running and stored.
        self.quotas = QuotaStore(db)
        if create_indexes:
            self.quotas.ensure_indexes()

    @property
    def name(self) -> str:
        """The database's name."""
        return self.db.name

    def now(self):
        """The MongoDB server's clock (leases, ages and windows use it, never a process's own)."""
        return server_now(self.db)

    def ping(self, timeout_s: float) -> None:
        """Raise ``StoreError`` unless the database answers within ``timeout_s``."""
        with pymongo.timeout(timeout_s):
            self.db.command("ping")

    def ensure_indexes(self) -> None:
        ensure_indexes(self.db)

    @classmethod
    def connect(cls, uri: str, name: str | None = None) -> "Store":
        return cls(database(uri, name))

    def close(self) -> None:
        self.wakeups.close()
        self.db.client.close()


__all__ = ["Store", "TaskStore", "DataStore", "FunctionStore", "RepoStore", "LockStore", "ScheduleStore",
           "SettingsStore", "NotifyStore", "TaskReads", "ResourceStats", "WorkerStore", "UserStore", "Wakeups",
           "Claim", "Claimant", "Success", "database", "server_now", "ensure_indexes"]
