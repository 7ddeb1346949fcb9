"""``schedules``: schedule definitions, and when each fires next.

A document: ``_id`` (the schedule's id), ``trigger``, ``task`` (a task body template),
``misfire_grace_s``, ``coalesce``, ``paused``, ``owner``, ``owner_role``, ``created_at``,
``updated_at``, ``rev`` (bumped by every change), ``fired``, ``last_fire_time``,
``last_task_id``, ``last_error`` (why the last firing could not publish; null once one did),
``last_error_at``, and ``next_fire_at``: the next fire time (UTC), or null
when paused or finished. The leader reads only the due ones (``due``, on the ``next_fire``
index) and moves ``next_fire_at`` on with a compare-and-set (``advance``), so a change made
meanwhile through the API is never overwritten.
"""
from __future__ import annotations

from datetime import datetime

from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from fsm.errors import Conflict

#: ``next_fire``: not partial, so the look for documents without the field uses it too.
INDEXES = [IndexModel([("next_fire_at", ASCENDING)], name="next_fire"),
           IndexModel([("owner", ASCENDING), ("_id", ASCENDING)], name="owner"),
           IndexModel([("owner", ASCENDING)], name="failing",
                      partialFilterExpression={"last_error": {"$type": "string"}})]
#: What ``recent_tasks`` shows of a schedule's tasks.
RUN_FIELDS = {"status": 1, "scheduled_for": 1, "created_at": 1, "finished_at": 1}


class ScheduleStore:
    def __init__(self, db: Database):
        self.db = db
        self.schedules = db.schedules

    def ensure_indexes(self) -> None:
        self.schedules.create_indexes(INDEXES)

    # ------------------------------------------------------------ the API's verbs
    def insert(self, doc: dict) -> None:
        try:
            self.schedules.insert_one(doc)
        except DuplicateKeyError:
            raise Conflict(f"a schedule with id {doc['_id']!r} already exists", ids=[doc["_id"]]) from None

    def get(self, sid: str) -> dict | None:
        return self.schedules.find_one({"_id": sid})

    def page(self, query: dict, skip: int, limit: int) -> tuple[list[dict], int]:
        """One page of schedules matching ``query`` (owner, paused, task.function), by id."""
        items = list(self.schedules.find(query).sort("_id", 1).skip(skip).limit(limit))
        return items, self.schedules.count_documents(query)

    def update(self, sid: str, rev: int, fields: dict) -> dict | None:
        """Set ``fields`` and bump ``rev`` if the schedule is still at ``rev``; None when it changed."""
        return self.schedules.find_one_and_update({"_id": sid, "rev": rev}, {"$set": fields, "$inc": {"rev": 1}},
                                                  return_document=ReturnDocument.AFTER)

    def delete(self, sid: str) -> bool:
        return self.schedules.delete_one({"_id": sid}).deleted_count == 1

    def recent_tasks(self, sid: str, limit: int = 20) -> list[dict]:
        """The newest tasks a schedule created (the tasks' ``schedule_runs`` index)."""
        return list(self.db.tasks.find({"schedule_id": sid}, RUN_FIELDS).sort("scheduled_for", -1).limit(limit))

    # ---------------------------------------------------------- the leader's verbs
    def due(self, now: datetime, limit: int = 100) -> list[dict]:
        """Schedules whose ``next_fire_at`` has come, earliest first."""
        return list(self.schedules.find({"next_fire_at": {"$lte": now}}).sort("next_fire_at", 1).limit(limit))

    def next_due(self) -> datetime | None:
        """The earliest ``next_fire_at`` of all schedules (None when nothing will fire)."""
        doc = self.schedules.find_one({"next_fire_at": {"$type": "date"}}, {"next_fire_at": 1},
                                      sort=[("next_fire_at", 1)])
        return doc and doc["next_fire_at"]

    def advance(self, sid: str, rev: int, seen: datetime, following: datetime | None) -> bool:
        """Move ``next_fire_at`` from ``seen`` to ``following`` unless the schedule changed meanwhile."""
        return self.schedules.update_one({"_id": sid, "rev": rev, "next_fire_at": seen},
                                         {"$set": {"next_fire_at": following}}).modified_count == 1

    def without_next_fire(self) -> list[dict]:
        """Schedules stored before ``next_fire_at`` existed (the field is absent, not null)."""
        return list(self.schedules.find({"next_fire_at": {"$exists": False}}).limit(1000))

    def set_first_next_fire(self, sid: str, rev: int, when: datetime | None) -> bool:
        return self.schedules.update_one({"_id": sid, "rev": rev, "next_fire_at": {"$exists": False}},
                                         {"$set": {"next_fire_at": when}}).modified_count == 1

    def record_fired(self, sid: str, fire_time: datetime, task_id: str) -> None:
        self.schedules.update_one({"_id": sid}, {"$inc": {"fired": 1}, "$max": {"last_fire_time": fire_time},
                                                 "$set": {"last_task_id": task_id, "last_error": None}})

    def record_error(self, sid: str, message: str) -> None:
        self.schedules.update_one({"_id": sid}, {"$set": {"last_error": message},
                                                 "$currentDate": {"last_error_at": True}})

    def failing(self, owner: str | None = None) -> list[dict]:
        """Schedules whose last firing could not publish (``last_error`` set); only ``owner``'s when given."""
        query: dict = {"last_error": {"$type": "string"}, **({"owner": owner} if owner else {})}
        return list(self.schedules.find(query, {"owner": 1, "last_error": 1, "last_error_at": 1}).limit(1000))


__all__ = ["ScheduleStore", "INDEXES"]
