"""Reads for placement questions: the work ahead of a task, and how long a function takes."""
from __future__ import annotations

from pymongo.database import Database

from fsm.states import Status
from fsm.store.schema import CLAIM_INDEX

#: Counting stops here: "more than 100,000 ahead" is answer enough.
MAX_AHEAD = 100_000
#: Finished tasks a mean duration is taken over.
DURATION_SAMPLE = 50


class PlacementReads:
    def __init__(self, db: Database):
        self.tasks = db.tasks

    def count_ahead(self, task: dict, lanes: list[str]) -> int:
        """Claimable tasks in these lanes that a worker would take before this one (claim order)."""
        prio, created = task.get("priority", 0), task.get("created_at")
        return self.tasks.count_documents(
            {"is_enabled": True, "lane": {"$in": lanes}, "open_slots": {"$gt": 0}, "_id": {"$ne": task["_id"]},
             "status": {"$in": [Status.QUEUED.value, Status.RUNNING.value]},
             "$or": [{"priority": {"$gt": prio}}, {"priority": prio, "created_at": {"$lt": created}}]},
            hint=CLAIM_INDEX, limit=MAX_AHEAD)

    def mean_duration_s(self, function: str) -> float | None:
        """Mean run time of the function's latest succeeded tasks (None: never ran)."""
        spans = [(d["finished_at"] - d["started_at"]).total_seconds() for d in self.tasks.find(
            {"function": function, "status": Status.SUCCEEDED.value}, {"started_at": 1, "finished_at": 1},
            sort=[("created_at", -1)], limit=DURATION_SAMPLE, hint="function_created")
            if d.get("started_at") and d.get("finished_at")]
        return sum(spans) / len(spans) if spans else None
