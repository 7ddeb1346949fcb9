"""Named read models over ``tasks``: each written once, each served by an index.

The pages, ``/stats``, ``/metrics``, the notifications and the resource statistics all read
through these, so they cannot disagree: e.g. the *queue age* is the age of the oldest queued,
enabled task everywhere (a disabled task waits on purpose and is never claimed).

Every model is a ``Read`` (its filter or pipeline, sort and index hint) built by one method, so
``TaskReads.explain(name, ...)`` shows the plan of exactly the query the model runs
(``tests/test_store_reads.py`` checks that each one uses its index and never scans the collection).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from pymongo.collection import Collection
from pymongo.database import Database

from fsm.states import FINAL, LIVE, AttemptState, Status
from fsm.store.counters import TaskCounters
from fsm.store.db import server_now

log = logging.getLogger("suanwang.store")

RUNNING = AttemptState.RUNNING.value


@dataclass
class Read:
    """One query: a ``find`` (``filter``), a ``count`` (``filter``) or an ``aggregate`` (``pipeline``)."""

    kind: str
    hint: str | None = None
    filter: dict = field(default_factory=dict)
    pipeline: list = field(default_factory=list)
    sort: list | None = None
    projection: dict | None = None
    limit: int = 0


class TaskReads:
    """Read-only views of ``tasks`` for pages, stats, metrics and alerts."""

    def __init__(self, db: Database):
        self.db = db
        self.tasks: Collection = db.tasks
        self.counters = TaskCounters(db)

    # ------------------------------------------------------------ the queries
    @staticmethod
    def status_count_read(status: str) -> Read:
        return Read("count", "status_created", {"status": status})

    @staticmethod
    def finished_since_read(since: datetime) -> Read:
        return Read("count", "finished", {"finished_at": {"$gte": since}})

    @staticmethod
    def oldest_queued_read(function: str | None = None, submitted_by: str | None = None) -> Read:
        query: dict = {"status": Status.QUEUED.value, "is_enabled": True}
        if function:
            query["function"] = function
        if submitted_by:
            query["submitted_by"] = submitted_by
        return Read("find", "queue_age", query, sort=[("created_at", 1)], limit=1,
                    projection={"created_at": 1, "function": 1})

    @staticmethod
    def running_read(worker: str | None = None, limit: int = 500) -> Read:
        match: dict = {"state": RUNNING} if worker is None else {"state": RUNNING, "worker": worker}
        return Read("find", "lease", {"status": Status.RUNNING.value, "attempts": {"$elemMatch": match}}, limit=limit,
                    projection={"function": 1, "version": 1, "attempts.worker": 1, "attempts.state": 1,
                                "attempts.started_at": 1})

    @staticmethod
    def finished_histogram_read(since: datetime, bin_minutes: int) -> Read:
        return Read("aggregate", "finished", pipeline=[
            {"$match": {"finished_at": {"$gte": since}}},
            {"$group": {"_id": {"at": {"$dateTrunc": {"date": "$finished_at", "unit": "minute",
                                                      "binSize": bin_minutes}}, "status": "$status"},
                        "n": {"$sum": 1}}},
            {"$sort": {"_id.at": 1}}])

    @staticmethod
    def last_run_read(schedule_id: str, limit: int = 1) -> Read:
        return Read("find", "schedule_runs", {"schedule_id": schedule_id}, sort=[("scheduled_for", -1)], limit=limit,
                    projection={"status": 1, "scheduled_for": 1, "created_at": 1, "finished_at": 1})

    @staticmethod
    def recent_runs_read(workers: list[str], since: datetime) -> Read:
        # Both branches are indexed (recently finished tasks, and running ones: a redundant task can
        # have ended attempts while others run); never the whole collection. The workers are matched
        # after the unwind: named in the first stage, they would draw the planner to the index of
        # every attempt a worker ever ran (``attempt_worker_created``), which grows with history.
        return Read("aggregate", None, pipeline=[
            {"$match": {"$or": [{"finished_at": {"$gte": since}}, {"status": Status.RUNNING.value}],
                        "attempts.ended_at": {"$gte": since}}},
            {"$unwind": "$attempts"},
            {"$match": {"attempts.worker": {"$in": workers}, "attempts.ended_at": {"$gte": since}}},
            {"$group": {"_id": "$function", "workers": {"$addToSet": "$attempts.worker"}}}])

    @staticmethod
    def live_by_function_read() -> Read:
        live = [Status.PENDING.value, Status.QUEUED.value, Status.RUNNING.value]
        return Read("aggregate", "status_function", pipeline=[
            {"$match": {"status": {"$in": live}}},
            {"$group": {"_id": {"s": "$status", "f": "$function"}, "n": {"$sum": 1}}}])

    @staticmethod
    def running_attempts_read() -> Read:
        return Read("aggregate", "lease", pipeline=[
            {"$match": {"status": Status.RUNNING.value, "attempts.state": RUNNING}},
            {"$project": {"function": 1, "n": {"$size": {"$filter": {
                "input": "$attempts", "cond": {"$eq": ["$$this.state", RUNNING]}}}}}},
            {"$group": {"_id": "$function", "n": {"$sum": "$n"}}}])

    # ------------------------------------------------------------- running them
    def run(self, read: Read):
        """A list of documents (find, aggregate) or a number (count)."""
        hint = {"hint": read.hint} if read.hint else {}
        if read.kind == "count":
            return self.tasks.count_documents(read.filter, **hint)
        if read.kind == "aggregate":
            return list(self.tasks.aggregate(read.pipeline, **hint))
        cursor = self.tasks.find(read.filter, read.projection, **hint)
        if read.sort:
            cursor = cursor.sort(read.sort)
        return list(cursor.limit(read.limit))

    def explain(self, read: Read) -> dict:
        """The server's query plan of ``read`` (``queryPlanner`` section)."""
        if read.kind == "aggregate":
            cmd = {"aggregate": "tasks", "pipeline": read.pipeline, "cursor": {}}
            if read.hint:
                cmd["hint"] = read.hint
            out = self.db.command("explain", cmd, verbosity="queryPlanner")
            # A pipeline whose first stages run in the query layer reports them under ``$cursor``.
            return out if "queryPlanner" in out else out["stages"][0]["$cursor"]
        cursor = self.tasks.find(read.filter, read.projection)
        if read.hint:
            cursor = cursor.hint(read.hint)
        if read.sort:
            cursor = cursor.sort(read.sort)
        return cursor.limit(read.limit).explain()

    # ------------------------------------------------------------ the models
    def status_counts(self) -> dict[str, int]:
        """Tasks per status, every status present, at a cost that does not grow with history.

        Live statuses are counted from ``status_created`` (as many keys as tasks waiting or
        running); final ones come from ``task_counters``. The two must add up to the number of
        tasks the collection holds (its metadata count): when they do not (counters missing, a
        write that lost its increment, tasks loaded by hand), every status is counted from the
        index instead, so the answer is always the same as ``counted_status_counts``.
        """
        for _ in range(2):  # a task published between the reads: once more
            counts = self._counts_from_counters()
            if counts is not None:
                return counts
        return self.counted_status_counts()

    def counted_status_counts(self) -> dict[str, int]:
        """Tasks per status, one COUNT_SCAN of ``status_created`` each (grows with the tasks)."""
        return {s.value: self.run(self.status_count_read(s.value)) for s in Status}

    def _counts_from_counters(self) -> dict[str, int] | None:
        final = self.counters.final_totals()
        live = {s.value: self.run(self.status_count_read(s.value)) for s in LIVE}
        total = self.tasks.estimated_document_count()
        if sum(final.values()) + sum(live.values()) != total or min(final.values()) < 0:
            return None
        return {s.value: (final if s in FINAL else live)[s.value] for s in Status}

    def ensure_counters(self) -> bool:
        """Rebuild ``task_counters`` when they are missing or do not add up (a server's start, after
        an upgrade or a restore); returns whether it rebuilt. Exact when no worker writes meanwhile;
        otherwise ``status_counts`` notices and counts from the index until the next start."""
        if self._counts_from_counters() is not None:
            return False
        absent = not self.counters.present()
        if absent and self.tasks.find_one({"status": {"$in": [s.value for s in FINAL]}}, {"_id": 1}) is None:
            return False  # nothing finished yet: nothing to count
        log.warning("task counters %s: recounting them from the tasks", "missing" if absent else "out of step")
        self.counters.rebuild(self.tasks)
        return True

    def finished_since(self, since: datetime) -> int:
        """Tasks that reached a final status at or after ``since``."""
        return self.run(self.finished_since_read(since))

    def oldest_queued(self, *, function: str | None = None, submitted_by: str | None = None) -> dict | None:
        """The oldest queued, enabled task (``_id``, ``created_at``, ``function``), or None.

        The one definition of "the queue's age": /stats, /metrics, the portal and queue.age alerts.
        """
        docs = self.run(self.oldest_queued_read(function, submitted_by))
        return docs[0] if docs else None

    def queue_age_s(self, now: datetime | None = None) -> float:
        """Seconds the oldest queued, enabled task has waited (0 for an empty queue)."""
        oldest = self.oldest_queued()
        if oldest is None:
            return 0.0
        now = now or server_now(self.db)
        return round(max(0.0, (now - oldest["created_at"]).total_seconds()), 3)

    def running_by_worker(self, worker: str | None = None, limit: int = 500) -> dict[str, list[dict]]:
        """``{worker: [{_id, function, started_at}]}`` of the running attempts."""
        by_worker: dict[str, list[dict]] = {}
        for doc in self.run(self.running_read(worker, limit)):
            for attempt in doc.get("attempts", []):
                if attempt.get("state") == RUNNING and (worker is None or attempt.get("worker") == worker):
                    by_worker.setdefault(attempt["worker"], []).append(
                        {"_id": doc["_id"], "function": doc["function"], "started_at": attempt.get("started_at")})
        return by_worker

    def live_by_function(self) -> dict[tuple[str, str], int]:
        """``{(status, function): n}`` of pending, queued and running tasks (an index-only scan)."""
        return {(r["_id"]["s"], r["_id"]["f"]): r["n"] for r in self.run(self.live_by_function_read())}

    def running_attempts_by_function(self) -> dict[str, int]:
        """``{function: running attempts}`` (the ``lease`` index: running tasks only)."""
        return {r["_id"]: r["n"] for r in self.run(self.running_attempts_read())}

    def finished_histogram(self, since: datetime, bin_minutes: int) -> list[dict]:
        """``[{at, status, n}]``: tasks finished per time bin and final status."""
        return [{"at": r["_id"]["at"], "status": r["_id"]["status"], "n": r["n"]}
                for r in self.run(self.finished_histogram_read(since, bin_minutes))]

    def last_run(self, schedule_id: str) -> dict | None:
        """A schedule's most recent firing, or None."""
        docs = self.run(self.last_run_read(schedule_id))
        return docs[0] if docs else None

    def schedule_runs(self, schedule_id: str, limit: int = 20) -> list[dict]:
        return self.run(self.last_run_read(schedule_id, limit))

    def recent_runs_by_function(self, workers: list[str], since: datetime) -> dict[str, set[str]]:
        """``{function: {worker}}`` for attempts of these workers that ended since ``since``."""
        return {r["_id"]: set(r["workers"]) for r in self.run(self.recent_runs_read(workers, since))}

    def taken_ids(self, ids: list[str], limit: int = 10) -> list[str]:
        """Which of these task ids exist already (at most ``limit``; the ``_id`` index)."""
        return [d["_id"] for d in self.tasks.find({"_id": {"$in": ids}}, {"_id": 1}).limit(limit)]

    def worker_samples(self, worker: str, since: datetime, bin_minutes: int) -> list[dict]:
        """A worker's heartbeat samples averaged per time bin: at, cpu, mem, load, gpu, gpu_temp
        (``worker_samples`` is a time-series collection bucketed by worker)."""
        rows = self.db.worker_samples.aggregate([
            {"$match": {"worker": worker, "at": {"$gte": since}}},
            {"$group": {"_id": {"$dateTrunc": {"date": "$at", "unit": "minute", "binSize": bin_minutes}},
                        "cpu": {"$avg": "$cpu"}, "mem": {"$avg": "$mem"}, "load": {"$avg": "$load"},
                        "gpu": {"$avg": {"$avg": "$gpus.util"}}, "gpu_temp": {"$avg": {"$max": "$gpus.temp"}}}},
            {"$sort": {"_id": 1}},
        ])
        return [{"at": r.pop("_id"), **r} for r in rows]
