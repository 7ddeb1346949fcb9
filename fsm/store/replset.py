"""Three (or any odd number of) embedded mongods as one replica set, for failover tests and trials.

``EmbeddedReplicaSet(folder).start()`` runs the members on free ports (each with its own data
directory under ``folder``), initiates the set with all of them, waits for a writable primary
and returns the URI naming every member (``mongodb://h:p1,h:p2,h:p3/?replicaSet=...``).
``primary()`` says which member leads now (asked of each member directly); ``kill``,
``freeze``/``thaw`` (SIGSTOP/SIGCONT) and ``restart`` stage the faults.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

from fsm.errors import EmbeddedMongoError
from fsm.store.embedded import REPLICA_SET, EmbeddedMongo

#: MongoDB's default: a primary silent this long is replaced.
ELECTION_TIMEOUT_MS = 10_000


class EmbeddedReplicaSet:
    def __init__(self, folder: str | os.PathLike, members: int = 3, replica_set: str = REPLICA_SET,
                 election_timeout_ms: int = ELECTION_TIMEOUT_MS, cache_gb: float = 0.25):
        self.folder = Path(folder)
        self.replica_set = replica_set
        self.election_timeout_ms = election_timeout_ms
        self.members = [EmbeddedMongo(self.folder / f"member{i}", replica_set=replica_set, cache_gb=cache_gb)
                        for i in range(members)]

    @property
    def uri(self) -> str:
        hosts = ",".join(f"{m.host}:{m.port}" for m in self.members)
        return f"mongodb://{hosts}/?replicaSet={self.replica_set}"

    def start(self, timeout: float = 90) -> str:
        for member in self.members:
            member.launch()
        try:
            self._initiate(timeout)
        except BaseException:
            self.stop()
            raise
        return self.uri

    def _direct(self, i: int, timeout_ms: int = 500) -> MongoClient:
        m = self.members[i]
        return MongoClient(m.host, m.port, directConnection=True, serverSelectionTimeoutMS=timeout_ms,
                           connectTimeoutMS=timeout_ms, socketTimeoutMS=timeout_ms)

    def _initiate(self, timeout: float) -> None:
        config = {"_id": self.replica_set, "settings": {"electionTimeoutMillis": self.election_timeout_ms},
                  "members": [{"_id": i, "host": f"{m.host}:{m.port}"} for i, m in enumerate(self.members)]}
        deadline = time.monotonic() + timeout
        first = self._direct(0)
        try:
            while True:
                try:
                    first.admin.command("replSetInitiate", config)
                    break
                except OperationFailure as exc:
                    if exc.code == 23:  # AlreadyInitialized (a restart on the same folders)
                        break
                    raise EmbeddedMongoError(f"replica set initiation failed: {exc}") from exc
                except PyMongoError:
                    if time.monotonic() > deadline:
                        raise EmbeddedMongoError("mongod members did not start listening") from None
                    time.sleep(0.2)
        finally:
            first.close()
        self.wait_primary(max(1.0, deadline - time.monotonic()))

    def state(self, i: int) -> dict:
        """The member's own ``hello`` ({} when it does not answer)."""
        if self.members[i].process is None:
            return {}
        client = self._direct(i)
        try:
            return client.admin.command("hello")
        except PyMongoError:
            return {}
        finally:
            client.close()

    def primary(self) -> int | None:
        """The index of the member that is a writable primary now, if any."""
        for i in range(len(self.members)):
            if self.state(i).get("isWritablePrimary"):
                return i
        return None

    def wait_primary(self, timeout: float = 60, other_than: int | None = None) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i in range(len(self.members)):
                if i != other_than and self.state(i).get("isWritablePrimary"):
                    return i
            time.sleep(0.05)
        raise EmbeddedMongoError(f"no writable primary within {timeout:.0f}s")

    # -------------------------------------------------------------- faults
    def kill(self, i: int) -> None:
        self.members[i].kill()

    def freeze(self, i: int) -> None:
        os.kill(self.members[i].process.pid, signal.SIGSTOP)

    def thaw(self, i: int) -> None:
        os.kill(self.members[i].process.pid, signal.SIGCONT)

    def restart(self, i: int, timeout: float = 60) -> None:
        """Start a stopped member again on its data; returns once it is a secondary (or primary)."""
        self.members[i].launch()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hello = self.state(i)
            if hello.get("secondary") or hello.get("isWritablePrimary"):
                return
            time.sleep(0.1)
        raise EmbeddedMongoError(f"member {i} did not rejoin within {timeout:.0f}s")

    def stop(self) -> None:
        for member in self.members:
            if member.process is not None:
                try:
                    os.kill(member.process.pid, signal.SIGCONT)  # a frozen member cannot shut down
                except ProcessLookupError:
                    pass
            member.stop()

    def __enter__(self) -> "EmbeddedReplicaSet":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
