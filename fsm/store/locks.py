"""Named leases in ``locks`` (``{_id: name, holder, expires_at, renewed_at}``), timed by the server's clock."""
from __future__ import annotations

from datetime import timedelta

from pymongo import ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from fsm.store.db import server_now


class LockStore:
    """Take, renew and give back a named lease; one holder at a time."""

    def __init__(self, db: Database):
        self.db = db
        self.locks = db.locks

    def acquire(self, name: str, holder: str, lease_s: float) -> bool:
        """Take the lease if it is free or expired, or renew ours; True while ``holder`` holds it."""
        now = server_now(self.db)
        try:
            doc = self.locks.find_one_and_update(
                {"_id": name, "$or": [{"holder": holder}, {"expires_at": {"$lt": now}}]},
                {"$set": {"holder": holder, "expires_at": now + timedelta(seconds=lease_s), "renewed_at": now}},
                upsert=True, return_document=ReturnDocument.AFTER)
        except DuplicateKeyError:
            return False  # another holder's lease is live (our upsert lost to its document)
        return doc is not None and doc["holder"] == holder

    def release(self, name: str, holder: str) -> None:
        """Give the lease back, only if ``holder`` holds it."""
        self.locks.delete_one({"_id": name, "holder": holder})

    def holder(self, name: str) -> str | None:
        doc = self.locks.find_one({"_id": name}, {"holder": 1})
        return doc["holder"] if doc else None
