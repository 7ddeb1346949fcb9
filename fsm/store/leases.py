"""``locks``: named leases timed by the MongoDB server's clock (the leader holds ``scheduler``).

A lease document is ``{_id: name, holder, expires_at, renewed_at}``. ``acquire`` takes a free
or expired lease, or renews the caller's own, in one atomic write; ``release`` gives it back
only when the caller holds it.
"""
from __future__ import annotations

from datetime import timedelta

from pymongo import ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from fsm.store.db import server_now


class LeaseStore:
    def __init__(self, db: Database):
        self.db = db
        self.locks = db.locks

    def acquire(self, name: str, holder: str, lease_s: float) -> bool:
        """Take ``name`` if it is free or expired, or renew it for ``holder``; True while held."""
        now = server_now(self.db)
        try:
            doc = self.locks.find_one_and_update(
                {"_id": name, "$or": [{"holder": holder}, {"expires_at": {"$lt": now}}]},
                {"$set": {"holder": holder, "expires_at": now + timedelta(seconds=lease_s), "renewed_at": now}},
                upsert=True, return_document=ReturnDocument.AFTER)
        except DuplicateKeyError:
            return False  # another holder's lease is live (our upsert lost to its document)
        return doc is not None and doc["holder"] == holder

    def release(self, name: str, holder: str) -> bool:
        """Give ``name`` back if ``holder`` holds it; True when it did."""
        return self.locks.delete_one({"_id": name, "holder": holder}).deleted_count == 1

    def holder(self, name: str) -> str | None:
        """Who holds ``name`` now (an expired lease has no holder)."""
        doc = self.locks.find_one({"_id": name, "expires_at": {"$gt": server_now(self.db)}}, {"holder": 1})
        return doc and doc["holder"]
