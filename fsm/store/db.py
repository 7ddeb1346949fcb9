"""Connecting to MongoDB with the settings every Suanwang process shares."""
from __future__ import annotations

from datetime import timezone
from urllib.parse import urlparse

from pymongo import MongoClient
from pymongo.database import Database
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from fsm.errors import ConfigError

DEFAULT_DB = "suanwang"
#: The driver's replica-set monitoring: how often it asks each member, and how long it waits.
FAILOVER_HEARTBEAT_MS, FAILOVER_CONNECT_MS = 500, 3_000


def client(uri: str, **kwargs) -> MongoClient:
    """A client with retryable writes and reads and majority writes (nothing acknowledged is lost)."""
    if not uri or not uri.startswith(("mongodb://", "mongodb+srv://")):
        raise ConfigError(f"not a MongoDB URI: {uri!r} (expected mongodb://host:port/...)")
    # heartbeatFrequencyMS and connectTimeoutMS: a frozen or dead primary is noticed (and calls
    # on it interrupted) within a few seconds, and a newly elected one found within half a second.
    options = dict(retryWrites=True, retryReads=True, w="majority", tz_aware=True,
                   serverSelectionTimeoutMS=30_000, connectTimeoutMS=FAILOVER_CONNECT_MS,
                   heartbeatFrequencyMS=FAILOVER_HEARTBEAT_MS, appname="suanwang")
    options.update(kwargs)
    return MongoClient(uri, **options)


def database(uri: str, name: str | None = None, **kwargs) -> Database:
    """The Suanwang database: ``name``, else the URI's path, else ``suanwang``."""
    name = name or (urlparse(uri).path.lstrip("/") or DEFAULT_DB)
    db = client(uri, **kwargs).get_database(
        name, write_concern=WriteConcern("majority"), read_concern=ReadConcern("majority"))
    return db


def server_now(db: Database):
    """The MongoDB server's clock: leases and schedules use it, never a process's own clock."""
    return db.client.admin.command("hello")["localTime"].replace(tzinfo=timezone.utc)
