"""Per-resource statistics: runs, success rate and durations of ended attempts, grouped by worker
or by function, computed by one aggregation over ``tasks.attempts`` (definitions in
``scheduler.resources``). With a window, the ``created`` index bounds the tasks read.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from pymongo.database import Database

from fsm.states import AttemptState

#: A released attempt never started (``worker.prefetch``): it is not a run and has no duration.
RUN_STATES = [s.value for s in AttemptState
              if s not in (AttemptState.RUNNING, AttemptState.CANCELLED, AttemptState.RELEASED)]
ENDED_STATES = RUN_STATES + [AttemptState.CANCELLED.value]


def _attempts(since: datetime | None) -> list[dict]:
    """Stages: one document per ended attempt, {worker, function, version, state, duration_s}."""
    match: dict = {"attempts.state": {"$in": ENDED_STATES}}
    if since is not None:
        match["created_at"] = {"$gte": since - timedelta(days=30)}  # a task's attempts end after it was created
    ended: dict = {"attempts.state": {"$in": ENDED_STATES}}
    if since is not None:
        ended["attempts.ended_at"] = {"$gte": since}
    return [
        {"$match": match},
        {"$project": {"function": 1, "version": 1, "attempts.worker": 1, "attempts.state": 1,
                      "attempts.started_at": 1, "attempts.ended_at": 1}},
        {"$unwind": "$attempts"},
        {"$match": ended},
        {"$project": {"_id": 0, "function": 1, "version": 1, "worker": "$attempts.worker",
                      "state": "$attempts.state", "ended_at": "$attempts.ended_at",
                      "duration_s": {"$cond": [
                          {"$and": [{"$eq": [{"$type": "$attempts.started_at"}, "date"]},
                                    {"$eq": [{"$type": "$attempts.ended_at"}, "date"]},
                                    {"$ne": ["$attempts.state", AttemptState.CANCELLED.value]}]},
                          {"$divide": [{"$subtract": ["$attempts.ended_at", "$attempts.started_at"]}, 1000]},
                          None]}}},
    ]


def _group(key: str) -> list[dict]:
    """Stages: runs, successes, success rate, mean and p95 duration grouped by ``key``."""
    is_run = {"$in": ["$state", RUN_STATES]}
    return [
        {"$group": {
            "_id": f"${key}",
            "runs": {"$sum": {"$cond": [is_run, 1, 0]}},
            "succeeded": {"$sum": {"$cond": [{"$eq": ["$state", AttemptState.SUCCEEDED.value]}, 1, 0]}},
            "cancelled": {"$sum": {"$cond": [{"$eq": ["$state", AttemptState.CANCELLED.value]}, 1, 0]}},
            "by_state": {"$push": "$state"},
            "mean_s": {"$avg": "$duration_s"},  # $avg skips the nulls of cancelled attempts
            "durations": {"$push": "$duration_s"},
            "others": {"$addToSet": "$worker" if key == "function" else "$function"},
            "last_ended_at": {"$max": "$ended_at"},
        }},
        {"$set": {"durations": {"$sortArray": {"input": {"$filter": {
            "input": "$durations", "cond": {"$ne": ["$$this", None]}}}, "sortBy": 1}}}},
        {"$set": {
            "failed": {"$subtract": ["$runs", "$succeeded"]},
            "success_rate": {"$cond": [{"$gt": ["$runs", 0]}, {"$divide": ["$succeeded", "$runs"]}, None]},
            "p95_s": {"$cond": [{"$gt": [{"$size": "$durations"}, 0]}, {"$arrayElemAt": ["$durations", {
                "$subtract": [{"$ceil": {"$multiply": [0.95, {"$size": "$durations"}]}}, 1]}]}, None]},
            "max_s": {"$max": "$durations"},
        }},
        {"$unset": ["durations", "by_state"]},
        {"$sort": {"_id": 1}},
    ]



class ResourceStats:
    def __init__(self, db: Database):
        self.tasks = db.tasks

    def by(self, key: str, since: datetime | None = None) -> list[dict]:
        """Rows ``{_id: <worker or function>, runs, succeeded, failed, cancelled, success_rate, mean_s,
        p95_s, max_s, others (functions of a worker, workers of a function), last_ended_at}``."""
        if key not in ("worker", "function"):
            raise ValueError(f"statistics are grouped by worker or function, not {key!r}")
        return list(self.tasks.aggregate(_attempts(since) + _group(key), allowDiskUse=True))
