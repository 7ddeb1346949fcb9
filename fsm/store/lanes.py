"""The ``lanes`` collection: every claim lane ever published, and which of them a worker serves.

A publish registers a lane it has not seen before (one upsert, remembered per process); a
claimant reads the small collection at most every ``REFRESH_S`` and keeps the lanes it can
serve, so its claim is an ``$in`` over exactly those.
"""
from __future__ import annotations

import threading
import time
from typing import Iterable

from pymongo.database import Database
from pymongo.write_concern import WriteConcern

from fsm.lanes import can_serve, lane_name, lane_requires

#: How stale a claimant's list of lanes may be when no wake-up names a new lane (a lost signal).
REFRESH_S = 1.0


class LaneStore:
    def __init__(self, db: Database):
        # Majority like the publish it precedes: a lane is never lost while its tasks exist.
        self.lanes = db.get_collection("lanes", write_concern=WriteConcern(w="majority"))
        self._known: set[str] = set()
        self._served: dict[tuple, tuple[float, list[str]]] = {}
        self._listed: set[str] = set()  # every lane the last read found
        self._lock = threading.Lock()

    def register(self, requires_list: Iterable[dict]) -> None:
        """Make sure each of these requirements' lanes is listed (before its tasks are stored)."""
        for requires in requires_list:
            parts = lane_requires(requires)
            name = lane_name(parts)
            if name in self._known:
                continue
            self.lanes.update_one({"_id": name}, {"$setOnInsert": {"requires": parts}}, upsert=True)
            with self._lock:
                self._known.add(name)

    def served_by(self, gpus: int, mem_gb: float, tags: Iterable[str], gpu_mem_gb: float = 0.0) -> list[str]:
        """The lanes a worker with these free resources can serve (cached for ``REFRESH_S``)."""
        key = (gpus, mem_gb, tuple(sorted(tags)), gpu_mem_gb > 0)
        now = time.monotonic()
        cached = self._served.get(key)
        if cached and now - cached[0] < REFRESH_S:
            return cached[1]
        docs = list(self.lanes.find({}, {"requires": 1}))
        self._listed = {doc["_id"] for doc in docs}
        names = sorted(doc["_id"] for doc in docs
                       if can_serve(doc["requires"], gpus=gpus, mem_gb=mem_gb, tags=key[2], gpu_mem_gb=gpu_mem_gb))
        self._served[key] = (now, names)
        return names

    def heard_of(self, names: Iterable[str]) -> None:
        """New tasks were published in these lanes: one this process has not read yet makes the
        next claim read the lanes again, instead of waiting up to ``REFRESH_S``."""
        if not set(names) <= self._listed:
            self._served = {}

    def all(self) -> list[dict]:
        return list(self.lanes.find().sort("_id", 1))
