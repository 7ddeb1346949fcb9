"""Counters kept as tasks change, so ``/metrics`` costs the same at 10,000 tasks as at 1,000,000.

``task_counters`` holds one document per function (``_id``: the function's name)::

    final     {succeeded, failed, cancelled}   tasks now in each final status
    attempts  {state: n}                       attempts ended, by how (never goes down)
    duration  {b0..b11, inf}, duration_sum     run time (started_at -> finished_at) of tasks that
                                               reached a final status, per ``BUCKETS`` bucket

The one task writer (``fsm.store.task_writer``) calls ``record`` after each plan it writes:
a final status counts +1 (and -1 when a requeue leaves it), each ended attempt counts once.
Live tasks (pending, queued, running) and running attempts are few and read live from their
indexes, so they are not counted here. Retention calls ``forget`` for the finished tasks it
moves out of ``tasks``, so ``final`` is what ``tasks`` holds now. The increment is a second,
primary-acknowledged write: a process killed between the two writes misses one increment (the
task itself is safe); ``fsm.store.reads.TaskReads.status_counts`` notices (its totals no longer
add up to the collection's count) and counts from the index instead until the next rebuild.

A database that has tasks but no counters (an upgrade, a restore, a bulk load) is recounted by
``rebuild``; the server does that at start (``TaskReads.ensure_counters``).
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable

from pymongo import ReplaceOne, UpdateOne
from pymongo.database import Database
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from fsm.decide import Plan
from fsm.states import FINAL

FINAL_VALUES = tuple(sorted(s.value for s in FINAL))

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

    def record_many(self, by_function: dict[str, dict[str, float]]) -> None:
        """Several functions' increments in one round trip (``finish_successes``)."""
        ops = [UpdateOne({"_id": fn}, {"$inc": dict(inc)}, upsert=True) for fn, inc in by_function.items() if inc]
        if ops:
            self.counters.bulk_write(ops, ordered=False)

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
        # Whole documents replaced one by one, then the functions no task has left removed: two
        # servers rebuilding at the same start write the same figures and never a duplicate key.
        if docs:
            self.counters.bulk_write([ReplaceOne({"_id": fn}, {"_id": fn, **doc}, upsert=True)
                                      for fn, doc in docs.items()], ordered=False)
        self.counters.delete_many({"_id": {"$nin": list(docs)}})
        return len(docs)

    def forget(self, removed: Iterable[dict]) -> None:
        """Tasks (``function``, ``status``) that left ``tasks`` (retention) no longer count as final."""
        gone = Counter((d["function"], d["status"]) for d in removed if d.get("status") in FINAL_VALUES)
        by_function: dict[str, dict[str, int]] = {}
        for (function, status), n in gone.items():
            by_function.setdefault(function, {})[f"final.{status}"] = -n
        if by_function:
            self.counters.bulk_write([UpdateOne({"_id": fn}, {"$inc": inc}, upsert=True)
                                      for fn, inc in by_function.items()], ordered=False)

    def final_totals(self) -> dict[str, int]:
        """Tasks now in each final status, all functions together (one small read)."""
        totals = dict.fromkeys(FINAL_VALUES, 0)
        for doc in self.counters.find({}, {"final": 1}):
            for status, n in (doc.get("final") or {}).items():
                if status in totals:
                    totals[status] += int(n)
        return totals

    def present(self) -> bool:
        return self.counters.find_one({}, {"_id": 1}) is not None

    def all(self) -> list[dict]:
        """Every function's counters (one small document each)."""
        return list(self.counters.find())
