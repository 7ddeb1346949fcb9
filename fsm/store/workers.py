"""The ``workers`` collection: each worker daemon's latest whoami, and its sample history."""
from __future__ import annotations

from datetime import timedelta
from typing import Any, Callable

from pymongo import ReturnDocument
from pymongo.database import Database
from pymongo.write_concern import WriteConcern

from fsm.errors import Conflict, NotFound
from fsm.store.db import server_now

ONLINE, DRAINING, OFFLINE = "online", "draining", "offline"
#: A worker's ``state``.
WORKER_STATES = (ONLINE, DRAINING, OFFLINE)


class WorkerStore:
    def __init__(self, db: Database):
        self.db = db
        self.workers = db.workers
        self.samples = db.get_collection("worker_samples", write_concern=WriteConcern(w=1))

    def register(self, name: str, whoami: dict[str, Any], stale_after_s: float,
                 holder_gone: Callable[[dict], bool] = lambda current: False) -> dict:
        """Claim the name for this process; refuse when another live daemon holds it.

        ``holder_gone(document)``: the caller knows the holder is dead (a killed daemon on this
        machine), so the name is taken at once instead of after ``stale_after_s``."""
        now = server_now(self.db)
        current = self.workers.find_one({"_id": name})
        if (current and current.get("state") in (ONLINE, DRAINING)
                and current.get("last_seen") and current["last_seen"].replace(tzinfo=now.tzinfo)
                > now - timedelta(seconds=stale_after_s)
                and (current.get("host"), current.get("pid")) != (whoami.get("host"), whoami.get("pid"))
                and not holder_gone(current)):
            raise Conflict(f"a worker named {name!r} is already online (host {current.get('host')}, pid "
                           f"{current.get('pid')}); choose another --name")
        doc = {**whoami, "state": ONLINE}
        return self.workers.find_one_and_update(
            {"_id": name}, {"$set": doc, "$currentDate": {"last_seen": True, "started_at": True}},
            upsert=True, return_document=ReturnDocument.AFTER)

    def heartbeat(self, name: str, whoami: dict[str, Any]) -> dict | None:
        """Refresh the whoami; returns the stored document (its ``state`` may say draining)."""
        doc = self.workers.find_one_and_update(
            {"_id": name}, {"$set": whoami, "$currentDate": {"last_seen": True}},
            return_document=ReturnDocument.AFTER)
        return doc

    def record_sample(self, name: str, sample: dict[str, Any]) -> None:
        self.samples.insert_one({"worker": name, "at": server_now(self.db), **sample})

    def set_state(self, name: str, state: str) -> dict:
        doc = self.workers.find_one_and_update({"_id": name}, {"$set": {"state": state}},
                                               return_document=ReturnDocument.AFTER)
        if doc is None:
            raise NotFound(f"no worker named {name!r}")
        return doc

    def mark_offline(self, stale_after_s: float) -> list[str]:
        """Workers not seen for ``stale_after_s`` (server clock) become offline; returns their names."""
        cutoff = server_now(self.db) - timedelta(seconds=stale_after_s)
        names = [d["_id"] for d in self.workers.find(
            {"state": {"$in": [ONLINE, DRAINING]}, "last_seen": {"$lt": cutoff}}, {"_id": 1})]
        if names:
            self.workers.update_many({"_id": {"$in": names}, "last_seen": {"$lt": cutoff}},
                                     {"$set": {"state": OFFLINE, "running": []}})
        return names

    def count_live(self) -> int:
        """Workers online or draining (the ``state_seen`` index)."""
        return self.workers.count_documents({"state": {"$in": [ONLINE, DRAINING]}})

    def list(self, query: dict | None = None) -> list[dict]:
        return list(self.workers.find(query or {}).sort("_id", 1))

    def get(self, name: str) -> dict:
        doc = self.workers.find_one({"_id": name})
        if doc is None:
            raise NotFound(f"no worker named {name!r}")
        return doc
