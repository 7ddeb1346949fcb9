"""What a running attempt reports between its start and its end: progress and its log tail.

Written by the worker's heartbeat, one update per attempt whose report changed, filtered on
the attempt still running on that worker (a late report of an ended attempt changes
nothing). It leaves ``rev`` alone: these fields are never read by a decision, and every
decision's write merges its attempt changes onto the stored attempt, so none is lost.
"""
from __future__ import annotations

from pymongo.database import Database
from pymongo.write_concern import WriteConcern

from fsm.states import AttemptState, Status


class LiveReports:
    """Reached as ``store.live``."""

    def __init__(self, db: Database):
        self.tasks = db.get_collection("tasks").with_options(write_concern=WriteConcern(w=1))

    def report(self, task_id: str, attempt_id: str, worker: str, *, progress: dict | None = None,
               logs: str | None = None) -> bool:
        """Store the attempt's latest progress (``{fraction, message}``; ``at`` is the server's clock)
        and log tail; False when the attempt no longer runs here."""
        stage: dict = {}
        if progress is not None:
            stage["progress"] = {"fraction": {"$literal": progress.get("fraction")},
                                 "message": {"$literal": progress.get("message")}, "at": "$$NOW"}
        if logs is not None:
            stage["attempts"] = {"$map": {"input": "$attempts", "as": "a", "in": {"$cond": [
                {"$eq": ["$$a.id", {"$literal": attempt_id}]},
                {"$mergeObjects": ["$$a", {"logs": {"$literal": logs[-4000:]}}]}, "$$a"]}}}
        if not stage:
            return True
        match = {"id": attempt_id, "worker": worker, "state": AttemptState.RUNNING.value}
        res = self.tasks.update_one({"_id": task_id, "status": Status.RUNNING.value,
                                     "attempts": {"$elemMatch": match}}, [{"$set": stage}])
        return res.matched_count == 1
