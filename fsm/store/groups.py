"""The ``groups`` collection: named sets of partitions that users belong to.

One document per group: ``{_id: name, partitions: [names], created_at, updated_at}``. A user's
``groups`` (``users`` collection) name groups; ``fsm.partitions.open_partitions`` decides.
"""
from __future__ import annotations

from pymongo import ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from fsm.errors import Conflict, NotFound
from fsm.store.db import server_now


class GroupStore:
    def __init__(self, db: Database):
        self.db = db
        self.groups = db.groups

    def add(self, name: str, partitions: list[str]) -> dict:
        now = server_now(self.db)
        doc = {"_id": name, "partitions": sorted(set(partitions)), "created_at": now, "updated_at": now}
        try:
            self.groups.insert_one(doc)
        except DuplicateKeyError:
            raise Conflict(f"a group named {name!r} already exists") from None
        return doc

    def get(self, name: str) -> dict:
        doc = self.groups.find_one({"_id": name})
        if doc is None:
            raise NotFound(f"no group named {name!r}")
        return doc

    def list(self) -> list[dict]:
        return list(self.groups.find().sort("_id", 1))

    def of(self, names: list[str]) -> list[dict]:
        """The groups among ``names`` (unknown names are skipped)."""
        return list(self.groups.find({"_id": {"$in": list(names or [])}})) if names else []

    def set_partitions(self, name: str, partitions: list[str]) -> dict:
        doc = self.groups.find_one_and_update(
            {"_id": name}, {"$set": {"partitions": sorted(set(partitions)), "updated_at": server_now(self.db)}},
            return_document=ReturnDocument.AFTER)
        if doc is None:
            raise NotFound(f"no group named {name!r}")
        return doc

    def remove(self, name: str) -> None:
        if not self.groups.delete_one({"_id": name}).deleted_count:
            raise NotFound(f"no group named {name!r}")
