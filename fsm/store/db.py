"""Connecting to MongoDB with the settings every Suanwang process shares."""
from __future__ import annotations

import threading
import time
import weakref
from datetime import timedelta, timezone
from urllib.parse import urlparse

from pymongo import MongoClient
from pymongo.database import Database
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from fsm.errors import ConfigError

DEFAULT_DB = "suanwang"
#: The driver's replica-set monitoring: how often it asks each member, and how long it waits.
FAILOVER_HEARTBEAT_MS, FAILOVER_CONNECT_MS = 1_000, 3_000


def client(uri: str, **kwargs) -> MongoClient:
    """A client with retryable writes and reads and majority writes (nothing acknowledged is lost)."""
    if not uri or not uri.startswith(("mongodb://", "mongodb+srv://")):
        raise ConfigError(f"not a MongoDB URI: {uri!r} (expected mongodb://host:port/...)")
    # heartbeatFrequencyMS and connectTimeoutMS: a frozen or dead primary is noticed (and calls
    # on it interrupted) within a few seconds, and a newly elected one found within a second (workers
    # look twice a second: see worker.config).
    # serverMonitoringMode "poll": one hello per heartbeat and no second (RTT) thread; the
    # streaming mode's pushed updates save nothing at a 0.5 s heartbeat and doubled idle work.
    options = dict(retryWrites=True, retryReads=True, w="majority", tz_aware=True,
                   serverSelectionTimeoutMS=30_000, connectTimeoutMS=FAILOVER_CONNECT_MS,
                   heartbeatFrequencyMS=FAILOVER_HEARTBEAT_MS, serverMonitoringMode="poll", appname="suanwang")
    options.update(kwargs)
    return MongoClient(uri, **options)


def database(uri: str, name: str | None = None, **kwargs) -> Database:
    """The Suanwang database: ``name``, else the URI's path, else ``suanwang``."""
    name = name or (urlparse(uri).path.lstrip("/") or DEFAULT_DB)
    db = client(uri, **kwargs).get_database(
        name, write_concern=WriteConcern("majority"), read_concern=ReadConcern("majority"))
    return db


#: How long a reading of the server's clock is carried forward on this process's monotonic clock.
CLOCK_READING_S = 5.0
_readings: "weakref.WeakKeyDictionary[MongoClient, tuple]" = weakref.WeakKeyDictionary()
_readings_lock = threading.Lock()


def server_now(db: Database):
    """The MongoDB server's clock: leases and schedules use it, never a process's own clock.

    One ``hello`` every ``CLOCK_READING_S`` per client, carried forward in between on the
    monotonic clock (which no one can set): periodic jobs read the time every round, and a
    round trip each time was most of an idle server's work.
    """
    client = db.client
    mono = time.monotonic()
    with _readings_lock:
        reading = _readings.get(client)
    if reading is None or mono - reading[1] > CLOCK_READING_S:
        sent = time.monotonic()
        server = client.admin.command("hello")["localTime"].replace(tzinfo=timezone.utc)
        reading = (server, (sent + time.monotonic()) / 2)  # the reply was made about half-way
        with _readings_lock:
            _readings[client] = reading
        mono = time.monotonic()
    return reading[0] + timedelta(seconds=mono - reading[1])
