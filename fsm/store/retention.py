"""Retention: finished tasks leave ``tasks`` after a configured age, and no task's lists grow without end.

``archive_finished`` moves (or deletes) tasks that finished (succeeded, failed, cancelled)
before ``now - older_than_s`` by the server's clock, in batches of at most ``batch`` through
the ``finished`` index. A move copies first and deletes second, and both steps are idempotent,
so a crash between them leaves at most a copy that the next run completes; a task re-queued
in between is kept in ``tasks`` and its stale copy removed.

``cap_lists`` keeps the newest ``history_cap`` history entries and ``attempts_cap`` attempts
(and previous attempts) of finished tasks, counting what it dropped in ``history_dropped`` /
``attempts_dropped``; live tasks are left whole, since their decisions read every attempt. It
visits tasks finished since its last run (a watermark in ``retention``), never all of them.

``tasks_archive`` has the same documents as ``tasks`` and is read by id only (``get``).
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from fsm.errors import ConfigError, TaskNotFound
from fsm.states import FINAL
from fsm.store.counters import TaskCounters
from fsm.store.db import server_now

ARCHIVE = "tasks_archive"
MODES = ("archive", "delete")
FINAL_VALUES = [s.value for s in FINAL]
#: (list field, its dropped-entries counter)
CAPPED = {"history": "history_dropped", "attempts": "attempts_dropped", "previous_attempts": "attempts_dropped"}
DUPLICATE_KEY = 11000


class Retention:
    def __init__(self, db: Database):
        self.db = db
        self.tasks = db.tasks
        self.archive = db.get_collection(ARCHIVE)
        self.state = db.get_collection("retention")
        self.counters = TaskCounters(db)  # finished tasks that leave ``tasks`` leave its counts

    def ensure_indexes(self) -> None:
        self.archive.create_indexes([IndexModel([("finished_at", DESCENDING)], name="finished", sparse=True),
                                     IndexModel([("submitted_by", ASCENDING)], name="user")])

    # ----------------------------------------------------------------- move
    def archive_finished(self, older_than_s: float, mode: Literal["archive", "delete"] = "archive",
                         batch: int = 1000, max_batches: int = 10) -> int:
        """Move (or delete) up to ``batch * max_batches`` tasks finished over ``older_than_s`` ago."""
        if mode not in MODES:
            raise ConfigError(f"retention mode must be one of {', '.join(MODES)}, got {mode!r}")
        cutoff = server_now(self.db) - timedelta(seconds=older_than_s)
        old = {"finished_at": {"$lt": cutoff}, "status": {"$in": FINAL_VALUES}}
        moved = 0
        for _ in range(max_batches):
            if mode == "archive":
                docs = list(self.tasks.find(old, sort=[("finished_at", ASCENDING)], limit=batch,
                                            hint="finished"))
                ids = [d["_id"] for d in docs]
                if not ids:
                    break
                self._copy(docs)
            else:
                docs = list(self.tasks.find(old, {"_id": 1, "function": 1, "status": 1},
                                            sort=[("finished_at", ASCENDING)], limit=batch, hint="finished"))
                ids = [d["_id"] for d in docs]
                if not ids:
                    break
            removed = self.tasks.delete_many({"_id": {"$in": ids}, **old}).deleted_count
            kept = set()
            if removed < len(ids):  # re-queued meanwhile: still in tasks (and its copy is stale)
                kept = {d["_id"] for d in self.tasks.find({"_id": {"$in": ids}}, {"_id": 1})}
                if mode == "archive":
                    self.archive.delete_many({"_id": {"$in": list(kept)}})
            self.counters.forget(d for d in docs if d["_id"] not in kept)
            moved += removed
            if len(ids) < batch:
                break
        return moved

    def _copy(self, docs: list[dict]) -> None:
        try:
            self.archive.insert_many(docs, ordered=False)
        except BulkWriteError as exc:  # already copied by a run that stopped before its delete
            if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
                raise

    def get(self, task_id: str, projection: dict | None = None) -> dict:
        doc = self.archive.find_one({"_id": task_id}, projection)
        if doc is None:
            raise TaskNotFound(f"no task with id {task_id!r}")
        return doc

    # ------------------------------------------------------------------ cap
    def cap_lists(self, history_cap: int, attempts_cap: int, batch: int = 1000, max_batches: int = 10) -> int:
        """Trim the lists of tasks finished since the last run; returns how many tasks were trimmed."""
        caps = {"history": history_cap, "attempts": attempts_cap, "previous_attempts": attempts_cap}
        mark = (self.state.find_one({"_id": "cap"}) or {}).get("finished_at", datetime(1970, 1, 1))
        trimmed = 0
        for _ in range(max_batches):
            sizes = {f: {"$size": {"$ifNull": [f"${f}", []]}} for f in caps}
            docs = list(self.tasks.find({"finished_at": {"$gte": mark}, "status": {"$in": FINAL_VALUES}},
                                        {"finished_at": 1, **sizes}, sort=[("finished_at", ASCENDING)],
                                        limit=batch, hint="finished"))
            if not docs:
                break
            long_ids = [d["_id"] for d in docs if any(d[f] > cap for f, cap in caps.items())]
            if long_ids:
                trimmed += self._trim(long_ids, caps)
            last = docs[-1]["finished_at"]
            mark = last + timedelta(milliseconds=1) if last == mark else last
            self.state.update_one({"_id": "cap"}, {"$set": {"finished_at": mark}}, upsert=True)
            if len(docs) < batch:
                break
        return trimmed

    def _trim(self, ids: list, caps: dict[str, int]) -> int:
        stage: dict = {}
        dropped: dict[str, list] = {}
        for field, cap in caps.items():
            size = {"$size": {"$ifNull": [f"${field}", []]}}
            stage[field] = {"$cond": [{"$gt": [size, cap]}, {"$slice": [f"${field}", -cap]}, f"${field}"]}
            dropped.setdefault(CAPPED[field], []).append({"$max": [0, {"$subtract": [size, cap]}]})
        for counter, parts in dropped.items():
            stage[counter] = {"$add": [{"$ifNull": [f"${counter}", 0]}, *parts]}
        stage["rev"] = {"$add": ["$rev", 1]}
        # previous_attempts may be absent: $slice of a missing field would write null
        stage["previous_attempts"] = {"$cond": [{"$isArray": "$previous_attempts"}, stage["previous_attempts"],
                                                "$$REMOVE"]}
        res = self.tasks.update_many({"_id": {"$in": ids}, "status": {"$in": FINAL_VALUES}}, [{"$set": stage}])
        return res.modified_count
