"""Wake-up signals: a publish inserts one small document into a capped collection; idle
workers tail it, so they wake within milliseconds without waiting for a majority commit."""
from __future__ import annotations

import time

import bson
from bson.raw_bson import RawBSONDocument
from pymongo import CursorType
from pymongo.database import Database
from pymongo.errors import PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern


def without_id(doc: dict) -> RawBSONDocument:
    """A signal as stored: without an ``_id``, so mongod assigns one in insert order. Ids made by
    the sending processes (server, workers) order by each process's random bytes within a second,
    and a reopened cursor (``_id > last``) would skip a later signal whose sender's bytes are lower."""
    return RawBSONDocument(bson.encode(doc))


class Wakeups:
    def __init__(self, db: Database):
        # w=1 and local reads: a signal is seen at once, not after the next journal flush;
        # a lost one only costs a poll interval, never a task.
        self.coll = db.get_collection("wakeups", write_concern=WriteConcern(w=1),
                                      read_concern=ReadConcern("local"))
        self._last = None
        self._cursor = None
        self._await_ms = 0
        #: Called with the lanes a signal names (new tasks' claim lanes), so a claimant's list of
        #: lanes is re-read at once when one is new to it (``Store`` wires ``LaneStore.heard_of``).
        self.on_lanes = None

    def signal(self, kind: str = "task", n: int = 1, lanes: list[str] | None = None) -> None:
        doc = {"kind": kind, "n": n}
        if lanes:
            doc["lanes"] = sorted(set(lanes))
        try:
            self.coll.insert_one(without_id(doc))
        except PyMongoError:
            pass  # workers fall back to polling

    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds for a new signal; True when one arrived."""
        deadline = time.monotonic() + timeout
        wanted_ms = max(1, int(timeout * 1000))
        try:
            # A cursor's await is fixed when it is opened: one opened for a short wait would make
            # every later, longer wait a string of short getMores (an idle worker's main cost).
            if self._cursor is not None and self._cursor.alive and self._await_ms != wanted_ms:
                self._cursor.close()
                self._cursor = None
            if self._cursor is None or not self._cursor.alive:
                if self._last is None:
                    newest = self.coll.find_one(sort=[("$natural", -1)])
                    self._last = newest["_id"] if newest else None
                query = {"_id": {"$gt": self._last}} if self._last is not None else {}
                self._cursor = self.coll.find(query, cursor_type=CursorType.TAILABLE_AWAIT).max_await_time_ms(
                    wanted_ms)
                self._await_ms = wanted_ms
            while self._cursor.alive and time.monotonic() < deadline:
                try:
                    doc = self._cursor.next()  # waits up to max_await_time_ms for a new document
                except StopIteration:
                    continue
                self._last = doc["_id"]
                if doc.get("lanes") and self.on_lanes is not None:
                    self.on_lanes(doc["lanes"])
                return True
            return False
        except PyMongoError:
            self._cursor = None
            time.sleep(min(timeout, 0.5))
            return False

    def close(self) -> None:
        if self._cursor is not None:
            self._cursor.close()
