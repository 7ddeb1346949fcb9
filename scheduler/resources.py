"""Resource statistics: per worker and per function, computed by MongoDB aggregations over
``tasks.attempts``, and the service map (which online machines serve each function).

A *run* is an ended attempt (succeeded, failed, timed_out, crashed or lost); cancelled
attempts are counted apart and left out of the success rate and durations. Durations are
``ended_at - started_at`` in seconds; ``p95`` is the nearest-rank 95th percentile (the
⌈0.95·n⌉-th smallest), computed with ``$sortArray`` because ``$percentile`` needs MongoDB 7.

A function is *served* by an online worker that has one of its versions checked out
(``versions_ready``) or ended an attempt of it within ``recent_s``.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from pymongo.database import Database

from fsm.states import AttemptState
from fsm.store.db import server_now
from fsm.store.workers import ONLINE

#: Attempts older than this are left out by default (0: all of them).
DEFAULT_WINDOW_S = 7 * 86400
#: A worker that ran a function this recently serves it.
DEFAULT_RECENT_S = 3600
RUN_STATES = [s.value for s in AttemptState if s not in (AttemptState.RUNNING, AttemptState.CANCELLED)]
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


def _round(row: dict) -> dict:
    for name in ("success_rate", "mean_s", "p95_s", "max_s"):
        if isinstance(row.get(name), float):
            row[name] = round(row[name], 4)
    return row


def by_worker(db: Database, since: datetime | None = None) -> list[dict]:
    """One row per worker: runs, succeeded, failed, cancelled, success_rate, mean_s, p95_s,
    max_s, functions (that it ran), last_ended_at."""
    rows = db.tasks.aggregate(_attempts(since) + _group("worker"), allowDiskUse=True)
    return [_round({"worker": r.pop("_id"), **{("functions" if k == "others" else k): v for k, v in r.items()}})
            for r in rows]


def by_function(db: Database, since: datetime | None = None) -> list[dict]:
    """One row per function: the same figures, and ``workers`` (that ran it)."""
    rows = db.tasks.aggregate(_attempts(since) + _group("function"), allowDiskUse=True)
    out = []
    for r in rows:
        r["others"] = sorted(w for w in r["others"] if w)
        out.append(_round({"function": r.pop("_id"), **{("workers" if k == "others" else k): v for k, v in r.items()}}))
    return out


def service_map(db: Database, now: datetime | None = None, recent_s: float = DEFAULT_RECENT_S) -> dict[str, list[str]]:
    """``{function: [online worker names]}``: workers with a version ready or a recent run of it."""
    now = now or server_now(db)
    online = {w["_id"]: w for w in db.workers.find({"state": ONLINE}, {"versions_ready": 1})}
    served: dict[str, set[str]] = {}
    for name, w in online.items():
        for pair in w.get("versions_ready") or []:
            if isinstance(pair, (list, tuple)) and len(pair) == 2:
                served.setdefault(str(pair[0]), set()).add(name)
    if online:
        since = now - timedelta(seconds=recent_s)
        recent = db.tasks.aggregate([
            # Both branches are indexed: recently finished tasks and running ones (a redundant task can
            # have ended attempts while others run); never the whole collection.
            {"$match": {"$or": [{"finished_at": {"$gte": since}}, {"status": "running"}],
                        "attempts": {"$elemMatch": {"worker": {"$in": sorted(online)}, "ended_at": {"$gte": since}}}}},
            {"$unwind": "$attempts"},
            {"$match": {"attempts.worker": {"$in": sorted(online)}, "attempts.ended_at": {"$gte": since}}},
            {"$group": {"_id": "$function", "workers": {"$addToSet": "$attempts.worker"}}},
        ])
        for row in recent:
            served.setdefault(row["_id"], set()).update(row["workers"])
    return {fn: sorted(names) for fn, names in sorted(served.items())}


def resource_stats(db: Database, *, window_s: float = DEFAULT_WINDOW_S, recent_s: float = DEFAULT_RECENT_S,
                   now: datetime | None = None) -> dict:
    """Everything ``GET /api/v1/stats/resources`` answers: ``workers``, ``functions``, ``service_map``.

    Each worker row also carries the worker's state, host and latest resources (cpu, mem,
    disk, gpus) when the worker is known.
    """
    now = now or server_now(db)
    since = now - timedelta(seconds=window_s) if window_s else None
    workers = by_worker(db, since)
    known = {w["_id"]: w for w in db.workers.find({}, {"host": 1, "state": 1, "last_seen": 1, "cpu.percent": 1,
                                                      "mem.percent": 1, "disk.percent": 1, "gpus": 1,
                                                      "quarantined": 1})}
    listed = {row["worker"] for row in workers}
    workers += [{"worker": name, "runs": 0, "succeeded": 0, "failed": 0, "cancelled": 0, "success_rate": None,
                 "mean_s": None, "p95_s": None, "max_s": None, "functions": [], "last_ended_at": None}
                for name in sorted(set(known) - listed)]
    for row in workers:
        info = known.get(row["worker"], {})
        row.update(state=info.get("state"), host=info.get("host"), last_seen=info.get("last_seen"),
                   cpu_percent=(info.get("cpu") or {}).get("percent"), mem_percent=(info.get("mem") or {}).get("percent"),
                   disk_percent=(info.get("disk") or {}).get("percent"), gpus=info.get("gpus") or [],
                   quarantined=info.get("quarantined") or [])
        row["functions"] = sorted(f for f in row.get("functions") or [] if f)
    workers.sort(key=lambda r: r["worker"] or "")
    return {"window_s": window_s, "since": since, "server_time": now, "workers": workers,
            "functions": by_function(db, since), "service_map": service_map(db, now, recent_s)}
