"""Quotas: how much one user, or one group's members together, may have waiting, running and stored.

``quotas`` — one document per holder (``_id``: ``user:<name>`` or ``group:<name>``)
    queued       tasks waiting (pending or queued) at most, or null (no limit)
    running      tasks running at most (enforced at claim), or null
    data_bytes   bytes of stored data at most (uploads and large results), or null
    members      for a group: its members when the quota was set or the group changed (so a
                 worker, which may not read ``users``, can count their running tasks)
    updated_at (server clock), updated_by
The leader counts the running tasks under every running limit and writes the room left into
every worker's document (``workers.quota_room``: ``{at, limits: [{owners, room}]}``), which a
heartbeat reads back anyway, and into ``quotas`` ``{_id: "running_room"}``, which a worker reads
once when it starts. A worker takes off what it claimed since ``at`` and leaves the tasks of owners
without room to others: no extra round trip, and exact for one worker.
"""
from __future__ import annotations

import time

from pymongo import ASCENDING, IndexModel
from pymongo.database import Database

from fsm.states import Status

USER, GROUP = "user:", "group:"
LIMITS = ("queued", "running", "data_bytes")
WAITING = [Status.PENDING.value, Status.QUEUED.value]
#: The leader's last count of the room under running limits, for a worker that has just started.
ROOM = "running_room"


def holder_id(kind: str, name: str) -> str:
    return f"{USER if kind == 'user' else GROUP}{name}"


class QuotaStore:
    def __init__(self, db: Database):
        self.db = db
        self.quotas = db.quotas
        self.tasks = db.tasks
        self._any, self._any_at = False, float("-inf")

    def ensure_indexes(self) -> None:
        # a user's live tasks counted from the index alone (the queued quota at every publish)
        self.tasks.create_indexes([IndexModel([("submitted_by", ASCENDING), ("status", ASCENDING)],
                                              name="user_status")])

    # --------------------------------------------------------------- limits
    def set(self, kind: str, name: str, limits: dict[str, int | None], by: str,
            members: list[str] | None = None) -> dict:
        doc = {**{k: limits.get(k) for k in LIMITS}, "updated_by": by}
        if kind == "group":
            doc["members"] = sorted(members or [])
        self.quotas.update_one({"_id": holder_id(kind, name)}, [{"$set": {**doc, "updated_at": "$$NOW"}}],
                               upsert=True)
        self.forget()
        return self.get(kind, name) or {}

    def get(self, kind: str, name: str) -> dict | None:
        return self.quotas.find_one({"_id": holder_id(kind, name)})

    def set_members(self, group: str, members: list[str]) -> None:
        """A group's members changed: its quota (if any) counts the new ones."""
        self.quotas.update_one({"_id": holder_id("group", group)}, {"$set": {"members": sorted(members)}})

    def for_user(self, name: str, groups: list[str]) -> list[dict]:
        """The quotas that bind ``name``: their own and their groups' (one round trip)."""
        ids = [holder_id("user", name)] + [holder_id("group", g) for g in groups]
        return list(self.quotas.find({"_id": {"$in": ids}}))

    def any(self, within_s: float = 2.0) -> bool:
        """Whether any quota is set (re-read at most every ``within_s``: a publish without quotas
        anywhere costs no round trip)."""
        now = time.monotonic()
        if now - self._any_at > within_s:
            self._any = self.quotas.find_one({"_id": {"$ne": ROOM}}, {"_id": 1}) is not None
            self._any_at = now
        return self._any

    def forget(self) -> None:
        """A quota was set here: the next ``any`` reads again."""
        self._any_at = float("-inf")

    def running_limits(self) -> list[dict]:
        return list(self.quotas.find({"running": {"$type": "number"}}))

    # ---------------------------------------------------------------- usage
    def waiting(self, owners: list[str]) -> int:
        return self.tasks.count_documents({"submitted_by": {"$in": owners}, "status": {"$in": WAITING}})

    def running(self, owners: list[str]) -> int:
        return self.tasks.count_documents({"submitted_by": {"$in": owners}, "status": Status.RUNNING.value})

    # --------------------------------------------------------- running limit
    def refresh_room(self, limits: list[dict], now) -> list[dict]:
        """Count the room left under each running limit (of ``limits``) and tell every worker."""
        entries = []
        for doc in limits:
            kind, _, name = doc["_id"].partition(":")
            owners = [name] if kind == "user" else sorted(doc.get("members") or [])
            if owners:
                entries.append({"owners": owners, "room": max(0, doc["running"] - self.running(owners))})
        room = {"at": now, "limits": entries}
        self.db.workers.update_many({"quota_room.limits": {"$ne": entries}}, {"$set": {"quota_room": room}})
        if (self.quotas.find_one({"_id": ROOM}) or {"limits": []})["limits"] != entries:
            self.quotas.replace_one({"_id": ROOM}, room, upsert=True)
        return entries

    def room(self) -> dict | None:
        """The leader's last count (a worker reads it when it starts; then its heartbeat brings it)."""
        return self.quotas.find_one({"_id": ROOM}, {"_id": 0})
