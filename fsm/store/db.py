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


def client(uri: str, **kwargs) -> MongoClient:
    """A client with retryable writes and reads and majority writes (nothing acknowledged is lost)."""
    if not uri or not uri.startswith(("mongodb://", "mongodb+srv://")):
        raise ConfigError(f"not a MongoDB URI: {uri!r} (expected mongodb://host:port/...)")
    options = dict(retryWrites=True, retryReads=True, w="majority", tz_aware=True,
                   serverSelectionTimeoutMS=30_000, appname="suanwang")
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
