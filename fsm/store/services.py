"""The ``services`` collection: stable names under which business users call a function.

One document per service::

    {_id: name, function, partition, price (credits per call), state: deployed | undeployed,
     deployed: version, previous: version | None, created_by, created_at, updated_at,
     history: [{action: create | deploy | rollback | undeploy, version, from, at, by}]}

The two latest versions are kept: ``deployed`` and ``previous`` (what a roll-back returns to).
Every change is one conditional update on the fields it read, so two deploys at once cannot
interleave: the loser re-reads and tries again. A publish reads the document once, so the task
is pinned to the version deployed at that moment.
"""
from __future__ import annotations

from pymongo import ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from fsm.errors import Conflict, NotFound
from fsm.store.db import server_now

DEPLOYED, UNDEPLOYED = "deployed", "undeployed"
#: Tries of a compare-and-set before giving up (only under a storm of concurrent deploys).
MAX_TRIES = 20


class ServiceStore:
    def __init__(self, db: Database):
        self.db = db
        self.services = db.services

    def create(self, name: str, function: str, version: str, partition: str, price: float, by: str) -> dict:
        now = server_now(self.db)
        doc = {"_id": name, "function": function, "partition": partition, "price": price, "state": DEPLOYED,
               "deployed": version, "previous": None, "created_by": by, "created_at": now, "updated_at": now,
               "history": [{"action": "create", "version": version, "from": None, "at": now, "by": by}]}
        try:
            self.services.insert_one(doc)
        except DuplicateKeyError:
            raise Conflict(f"a service named {name!r} already exists") from None
        return doc

    def get(self, name: str) -> dict:
        doc = self.services.find_one({"_id": name})
        if doc is None:
            raise NotFound(f"no service named {name!r}")
        return doc

    def list(self, partitions: frozenset[str] | None = None) -> list[dict]:
        """Every service, or those in ``partitions`` (None: all)."""
        query = {} if partitions is None else {"partition": {"$in": sorted(partitions)}}
        return list(self.services.find(query, {"history": 0}).sort("_id", 1))

    def deploy(self, name: str, version: str, by: str) -> dict:
        """Make ``version`` the deployed one (and re-enable); the one it replaces becomes ``previous``."""
        def change(cur: dict) -> dict:
            previous = cur["previous"] if cur["deployed"] == version else cur["deployed"]
            return {"deployed": version, "previous": previous, "state": DEPLOYED}
        return self._swap(name, "deploy", by, change)

    def rollback(self, name: str, by: str) -> dict:
        """Go back to ``previous`` (which becomes deployed; the current one becomes previous); 409 if none."""
        def change(cur: dict) -> dict:
            if not cur.get("previous"):
                raise Conflict(f"service {name!r} has no previous version to roll back to")
            return {"deployed": cur["previous"], "previous": cur["deployed"], "state": DEPLOYED}
        return self._swap(name, "rollback", by, change)

    def undeploy(self, name: str, by: str) -> dict:
        """Refuse new calls (running tasks are left alone); 409 when already undeployed."""
        def change(cur: dict) -> dict:
            if cur["state"] == UNDEPLOYED:
                raise Conflict(f"service {name!r} is already undeployed")
            return {"state": UNDEPLOYED}
        return self._swap(name, "undeploy", by, change)

    def _swap(self, name: str, action: str, by: str, change) -> dict:
        for _ in range(MAX_TRIES):
            cur = self.get(name)
            new = change(cur)
            now = server_now(self.db)
            entry = {"action": action, "version": new.get("deployed", cur["deployed"]), "from": cur["deployed"],
                     "at": now, "by": by}
            doc = self.services.find_one_and_update(
                {"_id": name, "deployed": cur["deployed"], "previous": cur["previous"], "state": cur["state"]},
                {"$set": {**new, "updated_at": now}, "$push": {"history": entry}},
                return_document=ReturnDocument.AFTER)
            if doc is not None:
                return doc
        raise Conflict(f"service {name!r} is being changed by someone else; try again")
