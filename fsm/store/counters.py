"""Counters kept as tasks change, so ``/metrics`` costs the same at 10,000 tasks as at 1,000,000.

``task_counters`` holds one document per function (``_id``: the function's name)::

    final     {succeeded, failed, cancelled}   tasks now in each final status
    attempts  {state: n}                       attempts ended, by how (never goes down)
    duration  {b0..b11, inf}, duration_sum     run time (started_at -> finished_at) of tasks that
                                               reached a final status, per ``BUCKETS`` bucket

The one task writer (``fsm.store.task_writer``) calls ``record`` after each plan it writes:
a final status counts +1 (and -1 when a requeue leaves it), each ended attempt counts once.
Live tasks (pending, queued, running) and running attempts are few and read live from their
indexes, so they are not counted here. The increment is a second, primary-acknowledged write:
a process killed between the two writes misses one increment (the task itself is safe).
"""
from __future__ import annotations

from collections import Counter

from pymongo.database import Database
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from fsm.decide import Plan
from fsm.states import FINAL

#: Task duration buckets in seconds (upper bounds; the last bucket is +Inf).
BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800, 3600)


def bucket_of(seconds: float) -> str:
    return next((f"b{i}" for i, bound in enumerate(BUCKETS) if seconds <= bound), "inf")


class TaskCounters:
    def __init__(self, db: Database):
        # Primary-acknowledged increments, read locally (a majority read could miss the latest ones).
        self.counters = db.get_collection("task_counters", write_concern=WriteConcern(w=1),
                                          read_concern=ReadConcern("local"))

    @staticmethod
    def increments(task: dict, plan: Plan) -> dict[str, float]:
        """What writing ``plan`` changes in the counters (pure: the plan and the task as written)."""
        inc: Counter = Counter()
        if plan.to is not None and plan.to != plan.frm:
            if plan.to in FINAL:
                inc[f"final.{plan.to.value}"] += 1
                started, finished = task.get("started_at"), task.get("finished_at")
                if started is not None and finished is not None:
                    seconds = max(0.0, (finished - started).total_seconds())
                    inc[f"duration.{bucket_of(seconds)}"] += 1
                    inc["duration_sum"] += seconds
            if plan.frm in FINAL:
                inc[f"final.{plan.frm.value}"] -= 1
        for attempt_id in plan.ended:
            inc[f"attempts.{plan.attempts[attempt_id]['state']}"] += 1
        return dict(inc)

    def record(self, task: dict, plan: Plan) -> None:
        inc = self.increments(task, plan)
        if inc:
            self.counters.update_one({"_id": task["function"]}, {"$inc": inc}, upsert=True)

    def rebuild(self, tasks) -> int:
        """Recount everything from the tasks (O(history): for a database loaded or upgraded without
        the counters; live writers must be stopped meanwhile). Returns the functions counted."""
        final = [s.value for s in FINAL]
        branches = [{"case": {"$lte": ["$d", bound]}, "then": f"b{i}"} for i, bound in enumerate(BUCKETS)]
        rows = tasks.aggregate([
            {"$project": {"function": 1, "status": 1, "d": {"$cond": [
                {"$and": [{"$in": ["$status", final]}, {"$eq": [{"$type": "$started_at"}, "date"]},
                          {"$eq": [{"$type": "$finished_at"}, "date"]}]},
                {"$divide": [{"$subtract": ["$finished_at", "$started_at"]}, 1000]}, None]},
                "ended": {"$filter": {"input": {"$concatArrays": [{"$ifNull": ["$attempts", []]},
                                                                  {"$ifNull": ["$previous_attempts", []]}]},
                                      "cond": {"$ne": ["$$this.state", "running"]}}}}},
            {"$facet": {
                "final": [{"$match": {"status": {"$in": final}}},
                          {"$group": {"_id": {"f": "$function", "s": "$status"}, "n": {"$sum": 1}}}],
                "duration": [{"$match": {"d": {"$ne": None}}},
                             {"$group": {"_id": {"f": "$function", "b": {"$switch": {"branches": branches,
                                                                                   "default": "inf"}}},
                                         "n": {"$sum": 1}, "sum": {"$sum": "$d"}}}],
                "attempts": [{"$unwind": "$ended"},
                             {"$group": {"_id": {"f": "$function", "s": "$ended.state"}, "n": {"$sum": 1}}}]}},
        ], allowDiskUse=True)
        docs: dict[str, dict] = {}
        for row in rows:
            for r in row["final"]:
                docs.setdefault(r["_id"]["f"], {}).setdefault("final", {})[r["_id"]["s"]] = r["n"]
            for r in row["attempts"]:
                docs.setdefault(r["_id"]["f"], {}).setdefault("attempts", {})[r["_id"]["s"]] = r["n"]
            for r in row["duration"]:
                doc = docs.setdefault(r["_id"]["f"], {})
                doc.setdefault("duration", {})[r["_id"]["b"]] = r["n"]
                doc["duration_sum"] = doc.get("duration_sum", 0.0) + r["sum"]
        self.counters.delete_many({})
        if docs:
            self.counters.insert_many([{"_id": fn, **doc} for fn, doc in docs.items()])
        return len(docs)

    def all(self) -> list[dict]:
        """Every function's counters (one small document each)."""
        return list(self.counters.find())
